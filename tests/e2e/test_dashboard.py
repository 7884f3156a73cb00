"""Issue 10: the token dashboard (Settings -> API Keys), driven in Debian's real headless Chromium.

Playwright for Python drives /usr/bin/chromium (no downloaded browser); the gateway runs its real
proxy app on loopback over a real SQLite file in front of a recording upstream; sign-in links come
from the real ``gateway user login-link`` CLI in a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from gateway.core.errors import AuthenticationError
from gateway.core.identity import Principal
from gateway.features.dashboard import signin
from tests.conftest import GatewayFactory
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.require import binary_or_skip, missing

try:
    from playwright import async_api as playwright_api
except ImportError:  # pragma: no cover - the test extra installs it
    playwright_api = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[2]
PATH = "/settings/api-keys"
SECRET = "test-dashboard-secret-0123456789"

CONFIG = """
store: "{store}"
token_types:
  - {name: pat, prefix: gw_pat_, kind: pat, inherit_user_permissions: true}
workspace: {source: header, header: X-Workspace-Id, match: any, required: false}
upstreams: {api: {url: "{up}"}}
scopes:
  known: [items:read, items:write, reports:read, workspace:admin, tokens:read, tokens:write, admin:all]
  implies: {items:write: [items:read], workspace:admin: [items:read], tokens:write: [tokens:read]}
roles:
  owner: [admin:all]
  admin: [workspace:admin, items:write, reports:read, tokens:write]
  member: [items:read, items:write, tokens:write]
cache: {poll_interval: 0.1, usage_flush_interval: 0.2}
routes:
  - {name: items, path: /api/items/**, scopes: [items:read], upstream: api}
dashboard: {path: /settings/api-keys, secret: "test-dashboard-secret-0123456789"}
"""


@pytest.fixture
async def gw(make_gateway: GatewayFactory, upstream: Upstream) -> RunningGateway:
    g = await make_gateway(CONFIG, up=upstream.url)
    svc = g.services
    await svc.create_workspace("Acme", "acme", "ws_acme")
    await svc.create_workspace("Globex", "globex", "ws_globex")
    for email in ("ann@acme.test", "bob@acme.test", "ada@acme.test"):
        await svc.create_user(email)
    await svc.add_member("acme", "ann@acme.test", "member")
    await svc.add_member("globex", "ann@acme.test", "member")
    await svc.add_member("acme", "bob@acme.test", "member")
    await svc.add_member("acme", "ada@acme.test", "admin")
    return g


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    chromium = binary_or_skip("chromium", "chromium")
    if playwright_api is None:
        missing("playwright", "install the test extra: pip install -e '.[test]'")
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium)
        yield b
        await b.close()


async def login_link(gw: RunningGateway, email: str, *extra: str, path: str = PATH) -> str:
    """A link minted by the real CLI, exactly as an operator would."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "--config",
        str(gw.config_path),
        "user",
        "login-link",
        email,
        "--base-url",
        gw.url,
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    url = out.decode().strip().splitlines()[-1]
    assert url.startswith(f"{gw.url}{path}/login?t=")
    return url


async def sign_in(browser: Any, gw: RunningGateway, email: str, **context: Any) -> Any:
    ctx = await browser.new_context(**context)
    ctx.set_default_timeout(5000)
    page = await ctx.new_page()
    await page.goto(await login_link(gw, email))
    await page.get_by_role("button", name=f"Sign in as {email}").click()
    try:
        await page.get_by_role("heading", name="API Keys").wait_for()
    except Exception:
        print(await page.content())
        raise
    assert page.url.endswith(PATH)
    return page


def row(page: Any, name: str) -> Any:
    return page.locator("#token-rows tr", has=page.get_by_role("rowheader", name=name))


async def status_of(http: aiohttp.ClientSession, gw: RunningGateway, token: str) -> int:
    async with http.get(f"{gw.url}/api/items/1", headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status


async def test_sign_in_create_copy_use_revoke(
    gw: RunningGateway,
    browser: Any,
    upstream: Upstream,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    page = await sign_in(browser, gw, "ann@acme.test")
    ctx = page.context
    await ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=gw.url)
    await page.get_by_text("Signed in as ann@acme.test").wait_for()

    # ann is in two workspaces: a picker, on Acme first (by name)
    picker = page.get_by_label("Workspace")
    assert await picker.input_value() == "ws_acme"
    assert await picker.locator("option").all_inner_texts() == ["Acme (acme)", "Globex (globex)"]

    # checkboxes offer only what a member may grant: no admin scopes, no reports
    offered = await page.locator('input[name="scope"]').evaluate_all("els => els.map(e => e.value)")
    assert offered == ["items:read", "items:write", "tokens:read", "tokens:write"]

    await page.get_by_label("Name", exact=True).fill("CI Pipeline")
    await page.get_by_label("items:read").check()
    await page.get_by_label("Expires", exact=True).select_option("30d")
    await page.get_by_role("button", name="Create token").click()

    created = page.locator("#created")
    await created.get_by_text("It cannot be shown again").wait_for()
    shown = await page.get_by_label("New token value").input_value()
    assert re.fullmatch(r"gw_pat_[A-Za-z0-9]{46}", shown)
    await page.get_by_role("button", name="Copy").click()
    await page.get_by_text("Copied to the clipboard.").wait_for()
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == shown

    # the new row: name, visible prefix, scopes, expiry, active — and never the secret
    r = row(page, "CI Pipeline")
    await r.wait_for()
    assert await r.get_attribute("data-status") == "active"
    text = await r.inner_text()
    assert shown[:16] in text and "items:read" in text and "Never" in text  # never used yet
    assert shown[16:] not in text

    # the copied token works through the gateway, as ann, against the real upstream
    assert await status_of(http, gw, copied) == 200
    assert upstream.last.header("X-Gateway-User-Id") == (await gw.services.user("ann@acme.test")).id

    # reloaded, the page still lists it (last used now set) but the secret is gone for good
    await page.reload()
    r = row(page, "CI Pipeline")
    assert await r.get_attribute("data-status") == "active"
    assert "Never" not in await r.locator('td[data-label="Last used"]').inner_text()
    assert shown[16:] not in await page.content()
    await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    if os.environ.get("GATEWAY_UPDATE_SCREENSHOT") == "1":
        await page.screenshot(path=str(ROOT / "docs/img/dashboard.png"), full_page=True)

    # revoke: a confirmation first; Cancel changes nothing
    await r.get_by_role("button", name="Revoke CI Pipeline").click()
    dialog = page.get_by_role("dialog", name="Revoke token?")
    await dialog.wait_for()
    await dialog.get_by_role("button", name="Cancel").click()
    assert await dialog.is_hidden()
    assert await status_of(http, gw, copied) == 200

    await r.get_by_role("button", name="Revoke CI Pipeline").click()
    await dialog.get_by_role("button", name="Revoke token").click()
    # the row shows revoked at once (no reload), with no Revoke button left
    await page.locator("#token-rows tr[data-status=revoked]").wait_for()
    r = row(page, "CI Pipeline")
    assert "revoked" in await r.locator('td[data-label="Status"]').inner_text()
    assert await r.get_by_role("button").count() == 0

    async def refused() -> bool:
        return await status_of(http, gw, copied) == 401

    assert await eventually(refused, within=1.0) <= 1.0
    assert (await gw.services.list_tokens("acme"))[0].revoked_at is not None


async def test_members_see_their_own_tokens_admins_see_and_revoke_all(
    gw: RunningGateway, browser: Any, http: aiohttp.ClientSession
) -> None:
    svc = gw.services
    _, bobs = await svc.create_token(
        workspace="acme", name="bob's deploy key", scopes=["items:read"], user="bob@acme.test"
    )
    await svc.create_token(
        workspace="acme", name="ann's laptop", scopes=["items:read"], user="ann@acme.test"
    )
    await svc.create_token(
        workspace="globex", name="ann's globex key", scopes=["items:read"], user="ann@acme.test"
    )

    # ann (member): her Acme token only; not bob's, not her Globex one
    ann = await sign_in(browser, gw, "ann@acme.test")
    names = await ann.locator("#token-rows th").all_inner_texts()
    assert names == ["ann's laptop"]
    assert "bob" not in await ann.content()
    # …and she cannot revoke bob's by forging the form either: 404, token still works
    bob_id = (await svc.list_tokens("acme", "bob@acme.test"))[0].id
    csrf = await ann.locator('meta[name="csrf-token"]').get_attribute("content")
    answer = await ann.request.post(
        f"{gw.url}{PATH}/tokens/{bob_id}/revoke",
        form={"csrf": csrf, "workspace": "ws_acme", "confirm": "yes"},
        headers={"Accept": "application/json", "Origin": gw.url},
    )
    assert answer.status == 404 and (await answer.json())["error"]["code"] == "NOT_FOUND"
    assert await status_of(http, gw, bobs) == 200
    # the workspace picker switches to Globex
    await ann.get_by_label("Workspace").select_option("ws_globex")
    await ann.get_by_role("button", name="Switch").click()
    await ann.get_by_role("heading", name="Your tokens in Globex").wait_for()
    assert await ann.locator("#token-rows th").all_inner_texts() == ["ann's globex key"]

    # ada (workspace admin): every Acme token, with who created it, and she revokes bob's
    ada = await sign_in(browser, gw, "ada@acme.test")
    await ada.get_by_role("heading", name="All tokens in Acme").wait_for()
    assert sorted(await ada.locator("#token-rows th").all_inner_texts()) == [
        "ann's laptop",
        "bob's deploy key",
    ]
    bob_row = row(ada, "bob's deploy key")
    assert await bob_row.locator('td[data-label="Created by"]').inner_text() == "bob@acme.test"
    await bob_row.get_by_role("button", name="Revoke bob's deploy key").click()
    await ada.get_by_role("dialog").get_by_role("button", name="Revoke token").click()
    await ada.locator(f"#row-{bob_id}[data-status=revoked]").wait_for()

    async def refused() -> bool:
        return await status_of(http, gw, bobs) == 401

    await eventually(refused, within=1.0)
    audit = await svc.store.list_audit(workspace_id="ws_acme")
    assert audit[0].action == "token.revoke" and audit[0].token_id == bob_id
    assert audit[0].actor == (await svc.user("ada@acme.test")).id


async def test_state_changes_need_the_csrf_token(gw: RunningGateway, browser: Any) -> None:
    page = await sign_in(browser, gw, "ann@acme.test")
    form = {"workspace": "ws_acme", "name": "sneaky", "scope": "items:read"}
    # the sign-in cookie alone (what a cross-site form would carry, were it sent) is not enough
    for extra in ({}, {"csrf": "forged"}):
        answer = await page.request.post(
            f"{gw.url}{PATH}/tokens", form={**form, **extra}, headers={"Accept": "application/json"}
        )
        assert answer.status == 403
        assert (await answer.json())["error"]["code"] == "CSRF_FAILED"
    # a right token from a foreign Origin is refused too
    csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    answer = await page.request.post(
        f"{gw.url}{PATH}/tokens",
        form={**form, "csrf": csrf},
        headers={"Accept": "application/json", "Origin": "https://evil.example"},
    )
    assert answer.status == 403
    assert await gw.services.list_tokens("acme") == []
    # the same form with the page's token works (so the refusals above were about CSRF alone)
    answer = await page.request.post(
        f"{gw.url}{PATH}/tokens",
        form={**form, "csrf": csrf},
        headers={"Accept": "application/json", "Origin": gw.url},
    )
    assert answer.status == 201
    assert [t.name for t in await gw.services.list_tokens("acme")] == ["sneaky"]
    # and sign-out is a CSRF-protected POST as well
    answer = await page.request.post(f"{gw.url}{PATH}/logout", form={})
    assert answer.status == 403


async def test_login_links_work_once_and_expire(
    gw: RunningGateway, browser: Any, http: aiohttp.ClientSession
) -> None:
    link = await login_link(gw, "ann@acme.test", "--ttl", "2m")
    first = await browser.new_context()
    page = await first.new_page()
    await page.goto(link)
    await page.get_by_role("button", name="Sign in as ann@acme.test").click()
    await page.get_by_role("heading", name="API Keys").wait_for()

    # the same link in another browser: refused when used, no sign-in cookie given
    other = await (await browser.new_context()).new_page()
    await other.goto(link)
    async with other.expect_response(lambda r: r.request.method == "POST") as answer:
        await other.get_by_role("button", name="Sign in as ann@acme.test").click()
    assert (await answer.value).status == 401
    await other.get_by_text("already used").wait_for()
    assert (await other.goto(f"{gw.url}{PATH}")).status == 401
    await other.get_by_role("heading", name="Sign in").wait_for()

    # an expired link (minted 2 minutes ago with a 1-minute life) is refused on sight
    user = await gw.services.user("ann@acme.test")
    cfg = gw.config.dashboard
    assert cfg is not None
    expired, _ = signin.login_link(cfg, gw.url, user, 60, now=time.time() - 120)
    response = await other.goto(expired)
    assert response is not None and response.status == 401
    await other.get_by_text("expired").wait_for()
    # a tampered link too
    response = await other.goto(link[:-2] + ("AA" if not link.endswith("AA") else "BB"))
    assert response is not None and response.status == 401

    # the CLI refuses links longer than an hour and unknown users
    for args in (("ann@acme.test", "--ttl", "2h"), ("nobody@acme.test",)):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "--config", str(gw.config_path),
            "user", "login-link", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode == 1 and b"login?t=" not in out


async def test_cookie_flags_and_session_jwt(
    gw: RunningGateway, browser: Any, http: aiohttp.ClientSession
) -> None:
    page = await sign_in(browser, gw, "ann@acme.test")
    [cookie] = [c for c in await page.context.cookies() if c["name"] == signin.COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == PATH
    assert not cookie["secure"]  # plain http on loopback; https sets Secure
    assert await page.evaluate("document.cookie") == ""

    # With a session verifier (issue 5's session JWTs), a session JWT cookie signs in as well.
    key = "jwt-test-key-0123456789abcdef0123"
    ann = await gw.services.user("ann@acme.test")

    async def verifier(raw: str) -> Principal:
        try:
            claims = jwt.decode(raw, key, algorithms=["HS256"], audience="authenticated")
        except jwt.PyJWTError:
            raise AuthenticationError(reason="session_invalid") from None
        return Principal(auth_method="session", user_id=claims["sub"])

    gw.gw.session_verifier = verifier
    good = jwt.encode({"sub": ann.id, "aud": "authenticated"}, key, algorithm="HS256")
    bad = jwt.encode({"sub": ann.id, "aud": "authenticated"}, "another-key-xxxxxxxxxxxxxxxxxxxx")
    for value, status in ((good, 200), (bad, 401)):
        async with http.get(f"{gw.url}{PATH}", headers={"Cookie": f"session={value}"}) as r:
            body = await r.text()
            assert r.status == status
            assert ("Signed in as" in body) == (status == 200)


async def test_phone_width_and_keyboard_only(gw: RunningGateway, browser: Any) -> None:
    page = await sign_in(
        browser, gw, "ann@acme.test", viewport={"width": 375, "height": 740}, is_mobile=True
    )
    await gw.services.create_token(
        workspace="acme", name="a rather long token name for a phone", user="ann@acme.test"
    )
    await page.reload()
    # nothing wider than the phone: no sideways scrolling
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375

    # create with the keyboard alone: Tab to each control by label, Space to check, Enter to send
    await page.get_by_label("Name", exact=True).focus()
    await page.keyboard.type("typed on a keyboard")
    await page.get_by_label("items:write").focus()
    await page.keyboard.press("Space")
    await page.get_by_role("button", name="Create token").focus()
    await page.keyboard.press("Enter")
    await page.get_by_text("It cannot be shown again").wait_for()
    tokens = {t.name: t for t in await gw.services.list_tokens("acme", "ann@acme.test")}
    # listed with what it can do: items:write and the items:read it implies
    assert tokens["typed on a keyboard"].scopes == frozenset({"items:write", "items:read"})
    # the revoke dialog opens and closes from the keyboard, focus back on the button
    revoke = page.get_by_role("button", name="Revoke typed on a keyboard")
    await revoke.focus()
    await page.keyboard.press("Enter")
    await page.get_by_role("dialog").wait_for()
    await page.keyboard.press("Escape")
    assert await page.get_by_role("dialog").is_hidden()
    assert await revoke.evaluate("b => b === document.activeElement")


async def test_without_javascript_the_forms_still_work(
    gw: RunningGateway, browser: Any, http: aiohttp.ClientSession
) -> None:
    page = await sign_in(browser, gw, "bob@acme.test", java_script_enabled=False)
    await page.get_by_label("Name", exact=True).fill("no-js key")
    await page.get_by_label("items:read").check()
    await page.get_by_role("button", name="Create token").click()
    await page.get_by_text("It cannot be shown again").wait_for()
    shown = await page.get_by_label("New token value").input_value()
    assert shown.startswith("gw_pat_") and await status_of(http, gw, shown) == 200
    # revoke: the server asks for the confirmation the dialog would have asked for
    await row(page, "no-js key").get_by_role("button", name="Revoke no-js key").click()
    await page.get_by_role("heading", name="Revoke token?").wait_for()
    assert await status_of(http, gw, shown) == 200
    await page.get_by_role("button", name="Revoke token").click()
    await page.locator("#token-rows tr[data-status=revoked]").wait_for()
    assert page.url.endswith(f"{PATH}?workspace=ws_acme")
    assert shown[16:] not in await page.content()

    async def refused() -> bool:
        return await status_of(http, gw, shown) == 401

    await eventually(refused, within=1.0)

"""The dashboard page each seed document sends its users to, served by its preset (issue 10).

"Create a key from Settings → API Keys" (Velocity), "Settings > Developer > API Tokens … Click
Create Token … Copy your token immediately" (VelaFlows), "Open Settings > Account > Access Tokens"
(Spedy): with GATEWAY_DASHBOARD_SECRET set, each preset serves the page at its document's path.
In a real Chromium a member signs in with a link from the CLI, creates a token there, and that
token then works through the preset in front of the real upstream, with the document's headers.
Without the secret the page is off and `gateway check` says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.test_dashboard import browser, login_link  # noqa: F401  (fixture)
from tests.support.harness import Upstream
from tests.support.presets import cli, run_preset

SECRET = "preset-dashboard-secret-0123456789"


@dataclass
class Case:
    path: str
    workspace: dict[str, str]
    role: str
    scope: str | None  # the checkbox to tick; None where tokens inherit the user's role
    prefix: str
    request: tuple[str, dict[str, str]]  # a path the new token may call, and the headers it needs
    env: dict[str, str] = field(default_factory=dict)


CASES = {
    "velocity": Case(
        "/settings/api-keys",
        {"name": "Acme", "slug": "acme"},
        "member",
        "issues:read",
        "vel_",
        ("/api/v1/issues", {"X-Workspace-Slug": "acme"}),
    ),
    "velaflows": Case(
        "/settings/developer/api-tokens",
        {"name": "Acme", "slug": "acme", "id": "65a1b2c3d4e5f60718293a4b"},
        "admin",
        "contacts:read",
        "sk_live_",
        ("/api/v1/contacts", {"x-workspace-id": "65a1b2c3d4e5f60718293a4b"}),
    ),
    "spedy": Case(
        "/settings/account/access-tokens",
        {"name": "Acme Corp", "slug": "acme-corp", "plan": "pro"},
        "member",
        None,
        "spedy_pat_",
        ("/api/v1/tickets", {"Host": "acme-corp.spedy.app"}),
    ),
}


@pytest.mark.parametrize("preset", sorted(CASES))
def test_without_a_secret_the_dashboard_is_off_and_check_says_so(preset: str) -> None:
    out = cli(preset, "check")
    assert out.returncode == 0, out.stderr
    warnings = json.loads(out.stdout)["warnings"]
    assert any("dashboard.secret" in w and "off until" in w for w in warnings), warnings


@pytest.mark.parametrize("preset", sorted(CASES))
async def test_the_documents_dashboard_page_creates_a_working_token(
    preset: str,
    browser: Any,  # noqa: F811
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    case = CASES[preset]
    env = {"GATEWAY_DASHBOARD_SECRET": SECRET, "UPSTREAM_URL": upstream.url, **case.env}
    async with run_preset(preset, monkeypatch, tmp_path, **env) as gw:
        assert gw.config.dashboard is not None and gw.config.dashboard.path == case.path
        svc = gw.services
        await svc.create_workspace(**case.workspace)
        await svc.create_user("ann@acme.test")
        await svc.add_member(case.workspace["slug"], "ann@acme.test", case.role)

        link = await login_link(gw, "ann@acme.test", path=case.path)
        ctx = await browser.new_context()
        ctx.set_default_timeout(5000)
        page = await ctx.new_page()
        await page.goto(link)
        await page.get_by_role("button", name="Sign in as ann@acme.test").click()
        await page.get_by_role("heading", name="API Keys").wait_for()
        assert page.url == f"{gw.url}{case.path}"

        await page.get_by_label("Name", exact=True).fill("From the dashboard")
        if case.scope is not None:
            await page.get_by_label(case.scope).check()
        await page.get_by_role("button", name="Create token").click()
        await page.locator("#created").get_by_text("It cannot be shown again").wait_for()
        token = await page.get_by_label("New token value").input_value()
        await ctx.close()
        assert token.startswith(case.prefix)

        path, headers = case.request
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{gw.url}{path}", headers={**headers, "Authorization": f"Bearer {token}"}
            ) as r,
        ):
            assert r.status == 200, await r.text()
        user = await svc.user("ann@acme.test")
        assert upstream.last.header("X-Gateway-User-Id") == user.id

"""config/spedy.yaml, walked beside its document (seeds/002_c21def0f3b7e9e2f.txt), statement by
statement, against the real preset file, a recording upstream on loopback and a real SQLite store.
Requests go to 127.0.0.1 with the organization's Host header, as a DNS wildcard would deliver them.

The token-management endpoints (/api/v1/me/tokens) are issue 4's and tested there; the OAuth
statements are walked at the end (the refusals in depth in test_oauth.py).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core import tokens
from gateway.core.errors import InsufficientScope, PlanRequired
from gateway.features.oauth.pkce import challenge_for
from gateway.features.oauth.service import OAuthService
from gateway.management.services import Services
from tests.support.calls import call
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.oauth import JWKSServer, jwk_of, session_jwt
from tests.support.presets import answers, cli, run_preset

ACME = "acme-corp.spedy.app"
GLOBEX = "globex.spedy.app"


@pytest.fixture
async def gw(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[RunningGateway]:
    async with run_preset("spedy", monkeypatch, tmp_path, UPSTREAM_URL=upstream.url) as g:
        svc = g.services
        await svc.create_workspace("Acme Corp", "acme-corp", plan="pro")
        await svc.create_workspace("Globex", "globex", plan="pro")
        await svc.create_workspace("Starter Co", "starter-co", plan="starter")
        for email in ("ann@acme.test", "vic@acme.test", "olga@acme.test"):
            await svc.create_user(email)
        await svc.add_member("acme-corp", "ann@acme.test", "member")
        await svc.add_member("acme-corp", "vic@acme.test", "viewer")
        await svc.add_member("acme-corp", "olga@acme.test", "owner")
        yield g


async def pat(svc: Services, user: str, org: str = "acme-corp") -> str:
    _, plaintext = await svc.create_token(
        workspace=org, name="CI Pipeline", type="spedy_pat", user=user
    )
    return plaintext


def h(token: str | None, host: str = ACME) -> dict[str, str]:
    out = {"Host": host}
    if token is not None:
        out["Authorization"] = f"Bearer {token}"
    return out


# curl -H "Authorization: Bearer spedy_pat_abc123def456..." https://acme-corp.spedy.app/api/v1/tickets
async def test_the_documented_curl(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    token = await pat(gw.services, "ann@acme.test")
    status, body = await call(http, "GET", f"{gw.url}/api/v1/tickets", h(token))
    assert status == 200, body
    assert body["path"] == "/api/v1/tickets"
    seen = upstream.last
    ann = await gw.services.user("ann@acme.test")
    assert seen.header("X-Gateway-Workspace-Slug") == "acme-corp"
    assert seen.header("X-Gateway-User-Id") == ann.id
    assert seen.header("Authorization") is None


# "All API requests require authentication via a Personal Access Token (PAT)."
async def test_every_request_needs_a_pat(gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    for path in ("/api/v1/tickets", "/api/v1/reports/weekly", "/api/v1/settings"):
        status, body = await call(http, "GET", gw.url + path, h(None))
        assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED"), path
    for other in (tokens.mint("spedy_pat_"), tokens.mint("vel_"), "spedy_pat_abc123def456"):
        status, _ = await call(http, "GET", f"{gw.url}/api/v1/tickets", h(other))
        assert status == 401, other[:12]


# "Tokens are prefixed with spedy_pat_ for easy identification."
async def test_tokens_are_prefixed_spedy_pat(gw: RunningGateway) -> None:
    token = await pat(gw.services, "ann@acme.test")
    assert token.startswith("spedy_pat_")
    tokens.parse(token, "spedy_pat_")  # a well-formed, checksummed token


# https://acme-corp.spedy.app/... - the organization is the first label of the host.
async def test_organization_comes_from_the_host(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    token = await pat(gw.services, "ann@acme.test")
    url = f"{gw.url}/api/v1/tickets"
    assert (await call(http, "GET", url, h(token, host="acme-corp.spedy.app:443")))[0] == 200
    assert (await call(http, "GET", url, h(token, host="ACME-CORP.Spedy.App")))[0] == 200
    for host in ("spedy.app", "acme-corp.example.com", "acme-corp.spedy.app.evil.test"):
        status, body = await call(http, "GET", url, h(token, host=host))
        assert (status, body["error"]["code"]) == (400, "WORKSPACE_REQUIRED"), host
    status, body = await call(http, "GET", url, h(token, host="nope.spedy.app"))
    assert (status, body["error"]["code"]) == (403, "WORKSPACE_ACCESS_DENIED")


async def test_host_suffix_comes_from_the_environment(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    env = {"UPSTREAM_URL": upstream.url, "SPEDY_HOST_SUFFIX": "spedy.internal"}
    async with run_preset("spedy", monkeypatch, tmp_path, **env) as g:
        await g.services.create_workspace("Acme Corp", "acme-corp", plan="pro")
        await g.services.create_user("ann@acme.test")
        await g.services.add_member("acme-corp", "ann@acme.test", "member")
        token = await pat(g.services, "ann@acme.test")
        url = f"{g.url}/api/v1/tickets"
        assert (await call(http, "GET", url, h(token, host="acme-corp.spedy.internal")))[0] == 200
        assert (await call(http, "GET", url, h(token, host=ACME)))[0] == 400


# "They inherit the permissions of the user who created them." / "All requests are executed with
# that user's permissions."
async def test_pats_act_with_their_users_permissions(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    svc = gw.services
    owner, member, viewer = (
        await pat(svc, "olga@acme.test"),
        await pat(svc, "ann@acme.test"),
        await pat(svc, "vic@acme.test"),
    )
    expected = {  # (method, path): (owner, member, viewer)
        ("GET", "/api/v1/tickets/T-1"): (200, 200, 200),
        ("POST", "/api/v1/tickets"): (200, 200, 403),
        ("PATCH", "/api/v1/customers/c1"): (200, 200, 403),
        ("GET", "/api/v1/reports/weekly"): (200, 200, 200),
        ("POST", "/api/v1/members/invite"): (200, 403, 403),
        ("PATCH", "/api/v1/settings"): (200, 403, 403),
    }
    for (method, path), statuses in expected.items():
        got = tuple(
            [(await call(http, method, gw.url + path, h(t)))[0] for t in (owner, member, viewer)]
        )
        assert got == statuses, (method, path)
    # A PAT can never be created with more than its user holds.
    with pytest.raises(InsufficientScope):
        await svc.create_token(
            workspace="acme-corp",
            name="x",
            type="spedy_pat",
            user="vic@acme.test",
            scopes=["tickets:write"],
        )


# "... executed with that user's permissions": the user's CURRENT role, so a lowered role means
# fewer routes and a removed user is refused, each within a second.
async def test_role_lowered_or_user_removed_applies_within_a_second(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    svc = gw.services
    token = await pat(svc, "ann@acme.test")
    url = f"{gw.url}/api/v1/tickets"
    assert (await call(http, "POST", url, h(token)))[0] == 200  # member may write (now cached)
    await svc.add_member("acme-corp", "ann@acme.test", "viewer")
    took = await eventually(answers(http, "POST", url, h(token), 403), within=1.0)
    assert took <= 1.0
    assert (await call(http, "GET", url, h(token)))[0] == 200  # a viewer still reads
    await svc.remove_member("acme-corp", "ann@acme.test")
    # Removal revokes the user's tokens in the organization (issue 17): 401 from then on, and
    # adding the user back does not bring the PAT back.
    took = await eventually(answers(http, "GET", url, h(token), 401), within=1.0)
    assert took <= 1.0
    await svc.add_member("acme-corp", "ann@acme.test", "member")
    status, body = await call(http, "GET", url, h(token))
    assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")


# "The token is scoped to the organization of the user who created it."
async def test_a_pat_only_works_on_its_own_organizations_host(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    svc = gw.services
    await svc.add_member("globex", "ann@acme.test", "owner")  # even where its user is a member
    token = await pat(svc, "ann@acme.test")
    status, body = await call(http, "GET", f"{gw.url}/api/v1/tickets", h(token, host=GLOBEX))
    assert (status, body["error"]["code"]) == (403, "WORKSPACE_ACCESS_DENIED")
    globex_pat = await pat(svc, "ann@acme.test", org="globex")
    assert (await call(http, "GET", f"{gw.url}/api/v1/tickets", h(globex_pat, host=GLOBEX)))[
        0
    ] == 200
    assert (await call(http, "GET", f"{gw.url}/api/v1/tickets", h(globex_pat)))[0] == 403


# "PATs require a Pro plan subscription." - minting for another plan is refused with a clear error.
async def test_pats_require_a_pro_plan_to_be_created(gw: RunningGateway) -> None:
    svc = gw.services
    await svc.add_member("starter-co", "ann@acme.test", "owner")
    with pytest.raises(PlanRequired) as err:
        await pat(svc, "ann@acme.test", org="starter-co")
    assert err.value.status == 403 and err.value.code == "PLAN_REQUIRED"
    assert "pro plan" in err.value.message and "starter" in err.value.message
    out = cli(
        "spedy",
        "token",
        "create",
        "--workspace",
        "starter-co",
        "--name",
        "CI Pipeline",
        "--user",
        "ann@acme.test",
        env={"GATEWAY_STORE": gw.config.store},
    )
    assert out.returncode == 1
    assert json.loads(out.stderr)["error"]["code"] == "PLAN_REQUIRED"
    assert "spedy_pat_" not in out.stdout


# "PATs require a Pro plan subscription." - an organization that leaves Pro has its PATs refused.
async def test_pats_stop_working_when_the_organization_leaves_pro(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    svc = gw.services
    token = await pat(svc, "ann@acme.test")
    url = f"{gw.url}/api/v1/tickets"
    assert (await call(http, "GET", url, h(token)))[0] == 200
    await svc.set_plan("acme-corp", "starter")
    await eventually(answers(http, "GET", url, h(token), 403), within=1.0)
    status, body = await call(http, "GET", url, h(token))
    assert (status, body["error"]["code"]) == (403, "PLAN_REQUIRED")
    await svc.set_plan("acme-corp", "pro")
    await eventually(answers(http, "GET", url, h(token), 200), within=1.0)


# "Revoke tokens you no longer need."
async def test_revoked_pat_is_refused_within_a_second(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    record, token = await gw.services.create_token(
        workspace="acme-corp", name="CI Pipeline", type="spedy_pat", user="ann@acme.test"
    )
    url = f"{gw.url}/api/v1/tickets"
    assert (await call(http, "GET", url, h(token)))[0] == 200
    await gw.services.revoke_token(record.id)
    took = await eventually(answers(http, "GET", url, h(token), 401), within=1.0)
    assert took <= 1.0


# "Spedy also supports OAuth 2.0 with PKCE. OAuth is available on all plans (including Starter and
# Trial)" / "All API requests require authentication via a Personal Access Token"
async def test_oauth_works_on_every_plan_and_sessions_do_not_reach_the_api(
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    jwks_server: JWKSServer,
) -> None:
    signing = ec.generate_private_key(ec.SECP256R1())
    jwks_server.keys = [jwk_of(signing.public_key(), "d1", "ES256")]
    auth_url = jwks_server.url.removesuffix("/.well-known/jwks.json")
    async with run_preset(
        "spedy", monkeypatch, tmp_path, UPSTREAM_URL=upstream.url, SPEDY_AUTH_URL=auth_url
    ) as gw:
        svc = gw.services
        await svc.create_workspace("Starter Co", "starter-co", plan="starter")
        await svc.create_workspace("Globex", "globex", plan="pro")
        sam = await svc.create_user("sam@starter.test")
        await svc.add_member("starter-co", sam.id, "member")
        await svc.add_member("globex", sam.id, "member")
        with pytest.raises(PlanRequired):  # PATs need Pro ...
            await pat(svc, sam.id, "starter-co")
        oauth = OAuthService(svc.store, gw.config)
        app, secret = await oauth.create_client(
            "MCP client", ["http://127.0.0.1/callback"], ["tickets:read"]
        )
        host = "starter-co.spedy.app"
        session = session_jwt(sam.id, key=signing, alg="ES256", kid="d1", iss=auth_url)
        verifier = secrets.token_urlsafe(48)
        query = {
            "client_id": app.id,
            "redirect_uri": "http://127.0.0.1:49152/callback",
            "response_type": "code",
            "scope": "tickets:read",
            "state": "s",
            "code_challenge": challenge_for(verifier),
            "code_challenge_method": "S256",
        }
        url = f"{gw.url}/oauth/consent?{urlencode(query)}"
        async with http.get(url, headers={"Host": host, "Authorization": f"Bearer {session}"}) as r:
            page_html = await r.text()
            assert r.status == 200
            csrf = r.cookies["gw_oauth_csrf"].value
        # On starter-co's host the grant can only be for starter-co (not sam's other org).
        assert "starter-co" in page_html and "globex" not in page_html
        form = {**query, "csrf_token": csrf, "decision": "approve"}
        (ws_id,) = [w.id for w in await svc.store.list_workspaces() if w.slug == "starter-co"]
        form["workspace"] = ws_id
        headers = {
            "Host": host,
            "Authorization": f"Bearer {session}",
            "Cookie": f"gw_oauth_csrf={csrf}",
        }
        async with http.post(
            f"{gw.url}/oauth/consent", data=form, headers=headers, allow_redirects=False
        ) as r:
            assert r.status == 302
            code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
        body = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": query["redirect_uri"],
            "code_verifier": verifier,
            "client_id": app.id,
            "client_secret": secret or "",
        }
        status, token = await call(
            http, "POST", f"{gw.url}/api/oauth/token", {"Host": host}, json=body
        )
        assert status == 200 and token["access_token"].startswith("spedy_oauth_")
        # ... but OAuth works on the starter plan, acting as sam in starter-co.
        status, _ = await call(
            http, "GET", f"{gw.url}/api/v1/tickets", h(token["access_token"], host)
        )
        assert status == 200
        assert upstream.last.header("X-Gateway-User-Id") == sam.id
        assert upstream.last.header("X-Gateway-Auth-Method") == "oauth"
        # The app's access token is no personal token, and its grant holds no tokens:read: it
        # cannot even list sam's tokens (issue 17).
        status, mine = await call(
            http, "GET", f"{gw.url}/api/v1/me/tokens", h(token["access_token"], host)
        )
        assert (status, mine["error"]["code"]) == (403, "FORBIDDEN")
        # The dashboard session signed sam in on the consent page, but is no API credential.
        status, body = await call(http, "GET", f"{gw.url}/api/v1/tickets", h(session, host))
        assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")

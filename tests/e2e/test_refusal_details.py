"""Issue 17 §6, the smaller points found: a removed member's tokens die for good, the
``insufficient_scope`` challenge only on scope refusals, ObjectId workspace ids in any case."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.features.oauth.service import OAuthService
from tests.e2e.test_management_doors import oauth_token
from tests.e2e.test_me_tokens import gw  # noqa: F401  (fixture: Spedy, ann in acme-corp and globex)
from tests.support.calls import call
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.presets import answers, run_preset

SPEDY = "acme-corp.spedy.app"
WS = "64f1a2b3c4d5e6f7a8b9c0d1"


@pytest.fixture
async def velaflows(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[RunningGateway]:
    # No sandbox upstream: sk_test_ tokens are refused with ENVIRONMENT_UNAVAILABLE.
    async with run_preset("velaflows", monkeypatch, tmp_path, UPSTREAM_URL=upstream.url) as g:
        await g.services.create_workspace("Acme", "acme", WS)
        yield g


def bearer(token: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


async def test_removing_a_member_revokes_their_tokens_there_for_good(
    gw: RunningGateway,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    svc = gw.services
    _, here = await svc.create_token(
        workspace="acme-corp", name="here", type="spedy_pat", user="ann@acme.test"
    )
    _, elsewhere = await svc.create_token(
        workspace="globex", name="there", type="spedy_pat", user="ann@acme.test"
    )
    access = await oauth_token(gw, "ann@acme.test", "acme-corp", ["tickets:read"])
    api = f"{gw.url}/api/v1/tickets"
    for tok in (here, access):
        assert (await call(http, "GET", api, bearer(tok, Host=SPEDY)))[0] == 200
    await svc.remove_member("acme-corp", "ann@acme.test")
    await svc.add_member("acme-corp", "ann@acme.test", "member")  # back again ...
    for tok in (here, access):  # ... but her old credentials are not (within the feed's poll)
        await eventually(answers(http, "GET", api, bearer(tok, Host=SPEDY), 401), within=1.0)
        status, body = await call(http, "GET", api, bearer(tok, Host=SPEDY))
        assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")
    # Her grant is over too (token issuance checks the grant, so its refresh token mints nothing).
    osvc = OAuthService(svc.store, gw.config)
    [grant] = await osvc.oauth.list_grants(workspace_id=(await svc.workspace("acme-corp")).id)
    assert grant.revoked_at is not None and grant.revoke_reason == "member_removed"
    # Her token in the other organization is untouched.
    globex = bearer(elsewhere, Host="globex.spedy.app")
    assert (await call(http, "GET", api, globex))[0] == 200
    events = await svc.store.list_audit(workspace_id=(await svc.workspace("acme-corp")).id)
    assert any(e.action == "token.revoke" and e.detail == "member_removed" for e in events)


async def test_insufficient_scope_challenge_only_on_scope_refusals(
    gw: RunningGateway,  # noqa: F811
    velaflows: RunningGateway,
    http: aiohttp.ClientSession,
) -> None:
    _, viewer_pat = await gw.services.create_token(
        workspace="acme-corp",
        name="ro",
        type="spedy_pat",
        user="ann@acme.test",
        scopes=["tickets:read"],
    )
    url = f"{gw.url}/api/v1/tickets"
    async with http.post(url, headers=bearer(viewer_pat, Host=SPEDY)) as r:
        assert r.status == 403
        assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    async with http.get(url, headers=bearer(viewer_pat, Host="globex.spedy.app")) as r:
        assert (r.status, (await r.json())["error"]["code"]) == (403, "WORKSPACE_ACCESS_DENIED")
        assert "insufficient_scope" not in r.headers.get("WWW-Authenticate", "")
    _, test_key = await velaflows.services.create_token(
        workspace=WS, name="sandbox", scopes=["contacts:read"], type="sk_test"
    )
    async with http.get(
        f"{velaflows.url}/api/v1/contacts", headers=bearer(test_key, **{"x-workspace-id": WS})
    ) as r:
        assert (r.status, (await r.json())["error"]["code"]) == (403, "ENVIRONMENT_UNAVAILABLE")
        assert "insufficient_scope" not in r.headers.get("WWW-Authenticate", "")


async def test_objectid_workspace_ids_are_accepted_in_any_case(
    velaflows: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, key = await velaflows.services.create_token(
        workspace=WS.upper(), name="k", scopes=["contacts:read"]
    )
    for spelling in (WS, WS.upper(), WS[:12] + WS[12:].upper()):
        status, _ = await call(
            http,
            "GET",
            f"{velaflows.url}/api/v1/contacts",
            bearer(key, **{"x-workspace-id": spelling}),
        )
        assert status == 200, spelling
        assert upstream.last.header("X-Gateway-Workspace-Id") == WS  # normalised to lowercase
    ws = await velaflows.services.create_workspace("Shouty", "shouty", "65AAAAAAAAAAAAAAAAAAAAAA")
    assert ws.id == "65aaaaaaaaaaaaaaaaaaaaaa"

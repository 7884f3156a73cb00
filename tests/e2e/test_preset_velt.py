"""config/velt.yaml, walked beside its document (seeds/003_0f78798a232af917.txt), statement by
statement, against the real preset file, a recording upstream on loopback and a real SQLite store.

The document's endpoint itself (POST /v2/workspace/apikey/create: its {"data": ...} body, its
{"result": ...} answer, allowedDomains, createAuthToken) is issue 4's and tested there; this module
tests the workspace-level auth in front of every /v2/ call and the error envelope of every refusal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.core import tokens
from tests.support.calls import call
from tests.support.harness import RunningGateway, Upstream
from tests.support.presets import run_preset
from tests.support.served import free_port

URL_PATH = "/v2/organizations/get"


@pytest.fixture
async def gw(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[RunningGateway]:
    async with run_preset("velt", monkeypatch, tmp_path, UPSTREAM_URL=upstream.url) as g:
        await g.services.create_workspace("Acme", "acme")
        await g.services.create_workspace("Other", "other")
        yield g


async def auth_token(gw: RunningGateway, ws: str = "acme") -> tuple[str, str]:
    """(workspace id, auth token) for ``ws``."""
    workspace = await gw.services.workspace(ws)
    _, plaintext = await gw.services.create_token(
        workspace=ws, name="workspace auth", scopes=["tokens:write"]
    )
    return workspace.id, plaintext


def velt_headers(workspace_id: str | None, token: str | None) -> dict[str, str]:
    h = {"Content-Type": "application/json"}
    if workspace_id is not None:
        h["x-velt-workspace-id"] = workspace_id
    if token is not None:
        h["x-velt-auth-token"] = token
    return h


def assert_velt_error(body: Any, status: str) -> None:
    """Failure Response: {"error": {"status": "INVALID_ARGUMENT", "message": "..."}} - exactly."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"status", "message"}, body
    assert body["error"]["status"] == status
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


# "pass x-velt-workspace-id and x-velt-auth-token ... as headers" (curl --header lines)
async def test_workspace_level_auth_headers_reach_the_api(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    ws_id, token = await auth_token(gw)
    payload = {"data": {"organizationIds": ["org1"]}}
    status, body = await call(
        http, "POST", gw.url + URL_PATH, velt_headers(ws_id, token), json=payload
    )
    assert status == 200, body
    seen = upstream.last
    assert (seen.method, seen.path) == ("POST", URL_PATH)
    assert seen.body == b'{"data": {"organizationIds": ["org1"]}}'
    assert seen.header("X-Gateway-Workspace-Id") == ws_id
    assert seen.header("x-velt-auth-token") is None  # the credential never reaches the upstream


# "... instead of a bearer header": the token is the raw header value; Authorization is not read.
async def test_the_token_is_a_raw_header_not_a_bearer(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    ws_id, token = await auth_token(gw)
    assert token.startswith("velt_at_") and len(token) >= 48  # this preset's choice of prefix
    url = gw.url + URL_PATH
    status, body = await call(
        http, "POST", url, {**velt_headers(ws_id, None), "Authorization": f"Bearer {token}"}
    )
    assert status == 401
    assert_velt_error(body, "UNAUTHENTICATED")
    status, body = await call(http, "POST", url, velt_headers(ws_id, f"Bearer {token}"))
    assert status == 401
    assert_velt_error(body, "UNAUTHENTICATED")


# Headers: "x-velt-workspace-id string required" -> 400 in the Velt envelope.
async def test_missing_workspace_id_is_400_invalid_argument(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    _, token = await auth_token(gw)
    status, body = await call(http, "POST", gw.url + URL_PATH, velt_headers(None, token))
    assert status == 400
    assert_velt_error(body, "INVALID_ARGUMENT")
    assert "x-velt-workspace-id" in body["error"]["message"]


# Headers: "x-velt-auth-token string required" -> 401 in the Velt envelope, also for a token that
# is malformed, unknown or revoked.
async def test_missing_or_bad_auth_token_is_401_unauthenticated(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    ws_id, _ = await auth_token(gw)
    url = gw.url + URL_PATH
    record, revoked = await gw.services.create_token(workspace="acme", name="old")
    await gw.services.revoke_token(record.id)
    for bad in (None, "<x-velt-auth-token>", tokens.mint("velt_at_"), revoked):
        status, body = await call(http, "POST", url, velt_headers(ws_id, bad))
        assert status == 401, bad
        assert_velt_error(body, "UNAUTHENTICATED")
        assert bad is None or bad not in str(body)


# "Your Workspace ID": an auth token works only with its own workspace's id -> 403.
async def test_another_workspaces_id_is_403_permission_denied(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    _, token = await auth_token(gw, "acme")
    other_id, _ = await auth_token(gw, "other")
    for ws_id in (other_id, "ws_doesnotexist0000"):
        status, body = await call(http, "POST", gw.url + URL_PATH, velt_headers(ws_id, token))
        assert status == 403, ws_id
        assert_velt_error(body, "PERMISSION_DENIED")


# Every refusal in the Velt envelope, also those before auth: unknown path 404, wrong method 405.
async def test_unknown_path_404_and_wrong_method_405_use_the_velt_envelope(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    ws_id, token = await auth_token(gw)
    status, body = await call(http, "POST", f"{gw.url}/v3/anything", velt_headers(ws_id, token))
    assert status == 404
    assert_velt_error(body, "NOT_FOUND")
    status, body = await call(http, "GET", gw.url + URL_PATH, velt_headers(ws_id, token))
    assert status == 405
    assert_velt_error(body, "UNIMPLEMENTED")


# Every refusal in the Velt envelope, also when the gateway fails closed: upstream down -> 502.
async def test_upstream_down_is_502_in_the_velt_envelope(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # a loopback port with nothing listening on it
    async with run_preset("velt", monkeypatch, tmp_path, UPSTREAM_URL=dead) as g:
        await g.services.create_workspace("Acme", "acme")
        ws_id, token = await auth_token(g)
        status, body = await call(http, "POST", g.url + URL_PATH, velt_headers(ws_id, token))
        assert status == 502
        assert_velt_error(body, "UNAVAILABLE")

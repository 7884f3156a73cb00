"""Issue 2 end to end: authenticate every request, forward the authorized ones.

Every test runs the real gateway app on a loopback port in front of a real recording upstream, over
a real SQLite file, and speaks HTTP to it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from gateway.store.base import TokenRecord
from tests.conftest import GatewayFactory
from tests.support.calls import call, send
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.served import cli


@pytest.fixture
async def sandbox() -> Any:
    up = Upstream(name="sandbox")
    await up.start()
    yield up
    await up.stop()


@pytest.fixture
async def gw(make_gateway: GatewayFactory, upstream: Upstream, sandbox: Upstream) -> RunningGateway:
    g = await make_gateway(
        CORE, up=upstream.url, sandbox=sandbox.url, timeout=2, trusted="10.9.9.9/32"
    )
    svc = g.services
    await svc.create_workspace("Acme", "acme", "ws_acme")
    await svc.create_workspace("Other", "other", "ws_other")
    return g


async def mint(
    gw: RunningGateway, scopes: list[str], ws: str = "acme", **kw: Any
) -> tuple[str, str]:
    record, token = await gw.services.create_token(workspace=ws, name="t", scopes=scopes, **kw)
    return record.id, token


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


# -- the happy path --------------------------------------------------------------------------------


async def test_authorized_request_reaches_upstream_with_identity_headers(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    tid, token = await mint(gw, ["items:write"])
    raw = URL(f"{gw.url}/api/items/42?b=2&a=%2F1&c=%7e", encoded=True)  # sent byte for byte
    resp = await send(http, "GET", raw, headers=bearer(token))
    status, body = resp.status, resp.json
    assert status == 200, body
    assert body == {"upstream": "up", "method": "GET", "path": "/api/items/42?b=2&a=%2F1&c=%7e"}
    seen = upstream.last
    assert seen.header("X-Gateway-Token-Id") == tid
    assert seen.header("X-Gateway-Workspace-Id") == "ws_acme"
    assert seen.header("X-Gateway-Workspace-Slug") == "acme"
    # implications expanded: items:write ⇒ items:read
    assert seen.header("X-Gateway-Scopes") == "items:read items:write"
    assert seen.header("X-Gateway-Auth-Method") == "token"
    assert seen.header("X-Gateway-Environment") == "live"
    assert seen.header("Authorization") is None, "the credential must not reach the upstream"
    assert resp.headers["X-Request-Id"] == seen.header("X-Request-Id")


async def test_public_route_needs_no_credential(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    status, _ = await call(http, "GET", f"{gw.url}/public/status")
    assert status == 200
    assert upstream.last.header("X-Gateway-Token-Id") is None


async def test_workspace_header_by_slug_or_id(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    _, token = await mint(gw, ["items:read"])
    for ws in ("acme", "ws_acme"):
        status, _ = await call(
            http, "GET", f"{gw.url}/api/items", headers=bearer(token, **{"X-Workspace-Id": ws})
        )
        assert status == 200


# -- 401 -------------------------------------------------------------------------------------------


async def test_missing_credential_is_401_with_bearer_challenge(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    resp = await send(http, "GET", f"{gw.url}/api/items")
    status, body = resp.status, resp.json
    assert status == 401
    assert body is not None
    assert body["error"]["code"] == "UNAUTHORIZED"
    assert body["error"]["request_id"] == resp.headers["X-Request-Id"]
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'


@pytest.mark.parametrize(
    "credential",
    [
        "gw_live_short",
        "gw_live_" + "A" * 46,
        "nope_" + "A" * 46,
        "Basic abc",
        "",
        "gw_test_" + "!" * 46,
    ],
)
async def test_malformed_credentials_are_401_and_never_reach_the_store(
    gw: RunningGateway, http: aiohttp.ClientSession, credential: str
) -> None:
    calls = 0
    real = gw.gw.store.find_token

    async def counting(token_hash: str) -> tuple[TokenRecord, float | None] | None:
        nonlocal calls
        calls += 1
        return await real(token_hash)

    gw.gw.store.find_token = counting  # type: ignore[method-assign]
    header = credential if credential.startswith("Basic") else f"Bearer {credential}"
    resp = await send(http, "GET", f"{gw.url}/api/items", headers={"Authorization": header})
    status, body = resp.status, resp.json
    assert status == 401
    assert body is not None and body["error"]["code"] == "UNAUTHORIZED"
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert calls == 0


async def test_unknown_expired_revoked_are_401_with_their_class(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    from gateway.core import tokens

    unknown = tokens.mint("gw_live_")
    status, body = await call(http, "GET", f"{gw.url}/api/items", headers=bearer(unknown))
    assert status == 401 and body is not None and "invalid" in body["error"]["message"]

    rec, token = await gw.services.create_token(
        workspace="acme", name="e", scopes=["items:read"], expires_at=time.time() + 0.5
    )
    assert (await call(http, "GET", f"{gw.url}/api/items", headers=bearer(token)))[0] == 200
    await gw.services.store.set_token_expiry(rec.id, time.time() - 1)
    await eventually(lambda: _status_is(http, f"{gw.url}/api/items", token, 401), within=1.0)
    status, body = await call(http, "GET", f"{gw.url}/api/items", headers=bearer(token))
    assert body is not None and "expired" in body["error"]["message"]

    rid, token2 = await mint(gw, ["items:read"])
    assert (await call(http, "GET", f"{gw.url}/api/items", headers=bearer(token2)))[0] == 200
    await gw.services.revoke_token(rid)
    await eventually(lambda: _status_is(http, f"{gw.url}/api/items", token2, 401), within=1.0)
    status, body = await call(http, "GET", f"{gw.url}/api/items", headers=bearer(token2))
    assert body is not None and "revoked" in body["error"]["message"]


async def _status_is(
    http: aiohttp.ClientSession, url: str, token: str, expected: int, **headers: str
) -> bool:
    async with http.get(url, headers=bearer(token, **headers)) as r:
        await r.read()
        return r.status == expected


async def test_error_messages_never_echo_the_token(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    from gateway.core import tokens

    t = tokens.mint("gw_live_")
    for cred in (t, t[:-1] + ("A" if t[-1] != "A" else "B")):
        async with http.get(f"{gw.url}/api/items", headers=bearer(cred)) as r:
            text = await r.text()
            assert cred not in text and cred[16:] not in text
            assert all(cred not in v for v in r.headers.values())


# -- 403 -------------------------------------------------------------------------------------------


async def test_missing_scope_is_403_forbidden_naming_required_scopes(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, token = await mint(gw, ["items:read"])
    before = len(upstream.seen)
    resp = await send(http, "POST", f"{gw.url}/api/items", headers=bearer(token), data=b"{}")
    status, body = resp.status, resp.json
    assert status == 403
    assert body is not None
    assert body["error"]["code"] == "FORBIDDEN"
    assert body["error"]["required_scopes"] == ["items:write"]
    assert (
        resp.headers["WWW-Authenticate"]
        == 'Bearer realm="gateway", error="insufficient_scope", scope="items:write"'
    )
    assert len(upstream.seen) == before, "a refused request must never reach the upstream"


async def test_any_of_and_all_of_scopes(gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    _, reports = await mint(gw, ["reports:read"])
    _, admin = await mint(gw, ["admin:all"])
    _, items = await mint(gw, ["items:read"])
    _, both = await mint(gw, ["items:read", "reports:read"])
    assert (await call(http, "GET", f"{gw.url}/reports/7", headers=bearer(reports)))[0] == 200
    assert (await call(http, "GET", f"{gw.url}/reports/7", headers=bearer(admin)))[0] == 200
    assert (await call(http, "GET", f"{gw.url}/reports/7", headers=bearer(items)))[0] == 403
    assert (await call(http, "GET", f"{gw.url}/both", headers=bearer(both)))[0] == 200
    assert (await call(http, "GET", f"{gw.url}/both", headers=bearer(reports)))[0] == 403
    # admin:all grants every scope
    assert (await call(http, "DELETE", f"{gw.url}/api/items/1", headers=bearer(admin)))[0] == 200


async def test_other_workspaces_token_is_403_workspace_access_denied(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    _, other = await mint(gw, ["admin:all"], ws="other")
    for ws in ("acme", "ws_acme", "nonexistent"):
        status, body = await call(
            http, "GET", f"{gw.url}/api/items", headers=bearer(other, **{"X-Workspace-Id": ws})
        )
        assert status == 403
        assert body is not None and body["error"]["code"] == "WORKSPACE_ACCESS_DENIED"


@pytest.mark.parametrize("value", ["bad value", "a/b", "x" * 200, "acme\u00e9"])
async def test_malformed_workspace_header_is_400(
    gw: RunningGateway, http: aiohttp.ClientSession, value: str
) -> None:
    _, token = await mint(gw, ["items:read"])
    status, body = await call(
        http, "GET", f"{gw.url}/api/items", headers=bearer(token, **{"X-Workspace-Id": value})
    )
    assert status == 400
    assert body is not None and body["error"]["code"] == "INVALID_WORKSPACE"


async def test_workspace_deleted_denies_its_tokens_within_a_second(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    _, token = await mint(gw, ["items:read"], ws="other")
    assert await _status_is(http, f"{gw.url}/api/items", token, 200)
    await gw.services.delete_workspace("other")
    await eventually(lambda: _status_is(http, f"{gw.url}/api/items", token, 403), within=1.0)


# -- credentials -----------------------------------------------------------------------------------


async def test_two_credentials_are_refused(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, a = await mint(gw, ["items:read"])
    _, b = await gw.services.create_token(
        workspace="acme", name="h", scopes=["items:read"], type="header"
    )
    before = len(upstream.seen)
    cases: list[Any] = [
        [("Authorization", f"Bearer {a}"), ("Authorization", f"Bearer {a}")],
        [("Authorization", f"Bearer {a}"), ("X-Api-Key", b)],
    ]
    for headers in cases:
        status, body = await call(http, "GET", f"{gw.url}/api/items", headers=headers)
        assert status == 400
        assert body is not None and body["error"]["code"] == "MULTIPLE_CREDENTIALS"
    status, body = await call(
        http, "GET", f"{gw.url}/api/items?access_token={a}", headers=bearer(a)
    )
    assert status == 400
    status, body = await call(http, "GET", f"{gw.url}/api/items?access_token={a}")
    assert status == 401
    assert len(upstream.seen) == before


async def test_credential_from_configured_header(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, key = await gw.services.create_token(
        workspace="acme", name="h", scopes=["items:read"], type="header"
    )
    status, _ = await call(http, "GET", f"{gw.url}/api/items", headers={"X-Api-Key": key})
    assert status == 200
    assert upstream.last.header("X-Api-Key") is None
    # the same key in a bearer header is not where this type is read: refused
    assert (await call(http, "GET", f"{gw.url}/api/items", headers=bearer(key)))[0] == 401


async def test_keep_credential_route_forwards_it(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, token = await mint(gw, ["items:read"])
    assert (await call(http, "GET", f"{gw.url}/keep/x", headers=bearer(token)))[0] == 200
    assert upstream.last.header("Authorization") == f"Bearer {token}"


# -- forwarding ------------------------------------------------------------------------------------


async def test_spoofed_identity_headers_are_removed_in_every_spelling(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    tid, token = await mint(gw, ["items:read"])
    spoof = [
        ("X-Gateway-User-Id", "usr_evil"),
        ("x-gateway-user-id", "usr_evil2"),
        ("X_Gateway_User_Id", "usr_evil3"),
        ("X-GATEWAY-SCOPES", "admin:all"),
        ("X_gateway_workspace_id", "ws_other"),
        ("X-Gateway-Token-Id", "tok_evil"),
    ]
    for public in (False, True):
        url = f"{gw.url}/public/x" if public else f"{gw.url}/api/items"
        headers = spoof + ([] if public else [("Authorization", f"Bearer {token}")])
        assert (await call(http, "GET", url, headers=headers))[0] == 200
        seen = upstream.last
        values = [
            v
            for k, vs in seen.headers.items()
            for v in vs
            if "gateway" in k.lower().replace("_", "-")
        ]
        assert not any("evil" in v or v in ("admin:all", "ws_other") for v in values), seen.headers
        assert all("_" not in k for k in seen.headers if "gateway" in k.lower())
        if not public:
            assert seen.header("X-Gateway-Token-Id") == tid
            assert seen.header("X-Gateway-User-Id") is None  # this key has no user


async def test_forwarded_headers_only_trusted_from_configured_proxies(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, token = await mint(gw, ["items:read"])
    headers = bearer(
        token,
        **{
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
            "Forwarded": "for=6.6.6.6",
            "X-Real-IP": "6.6.6.6",
        },
    )
    assert (await call(http, "GET", f"{gw.url}/api/items", headers=headers))[0] == 200
    seen = upstream.last
    assert seen.header("X-Forwarded-For") == "127.0.0.1"
    assert seen.header("X-Forwarded-Proto") == "http"
    assert seen.header("X-Forwarded-Host") == f"127.0.0.1:{gw.proxy_port}"
    assert seen.header("Forwarded") is None and seen.header("X-Real-IP") is None


async def test_forwarded_headers_appended_from_trusted_proxy(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    g = await make_gateway(
        CORE, up=upstream.url, sandbox=upstream.url, timeout=2, trusted="127.0.0.1/32"
    )
    await g.services.create_workspace("Acme", "acme")
    _, token = await mint(g, ["items:read"])
    headers = bearer(token, **{"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"})
    assert (await call(http, "GET", f"{g.url}/api/items", headers=headers))[0] == 200
    assert upstream.last.header("X-Forwarded-For") == "203.0.113.7, 127.0.0.1"
    assert upstream.last.header("X-Forwarded-Proto") == "https"


async def test_hop_by_hop_headers_dropped(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, token = await mint(gw, ["items:read"])
    headers = bearer(
        token,
        **{
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "Proxy-Authorization": "x",
            "TE": "trailers",
            "X-Kept": "yes",
        },
    )
    assert (await call(http, "GET", f"{gw.url}/api/items", headers=headers))[0] == 200
    names = upstream.last.header_names()
    assert "x-secret-hop" not in names and "proxy-authorization" not in names and "te" not in names
    assert upstream.last.header("X-Kept") == "yes"


async def test_prefix_strip_and_add(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, token = await mint(gw, ["items:read"])
    assert (await call(http, "GET", f"{gw.url}/svc/a/b?q=1", headers=bearer(token)))[0] == 200
    assert upstream.last.path == "/internal/a/b?q=1"


async def test_forwarded_path_is_the_matched_canonical_path(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, token = await mint(gw, ["items:read"])
    url = URL(f"{gw.url}/api/items/%41%42c", encoded=True)
    assert (await call(http, "GET", url, headers=bearer(token)))[0] == 200
    assert upstream.last.path == "/api/items/ABc"


async def test_no_route_is_404_deny_by_default(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, token = await mint(gw, ["admin:all"])
    for path in ("/", "/nothing", "/ADMIN", "/publicx", "/api"):
        status, body = await call(http, "GET", f"{gw.url}{path}", headers=bearer(token))
        assert status == 404, path
        assert body is not None and body["error"]["code"] == "NOT_FOUND"
    resp = await send(http, "OPTIONS", f"{gw.url}/api/items", headers=bearer(token))
    status, body = resp.status, resp.json
    assert status == 405 and "GET" in resp.headers["Allow"]


async def test_sandbox_tokens_reach_only_the_sandbox(
    gw: RunningGateway, upstream: Upstream, sandbox: Upstream, http: aiohttp.ClientSession
) -> None:
    _, live = await mint(gw, ["items:read"])
    _, test = await gw.services.create_token(
        workspace="acme", name="t", scopes=["items:read"], type="test"
    )
    s, body = await call(http, "GET", f"{gw.url}/api/items", headers=bearer(test))
    assert s == 200 and body is not None and body["upstream"] == "sandbox"
    assert sandbox.last.header("X-Gateway-Environment") == "test"
    s, body = await call(http, "GET", f"{gw.url}/api/items", headers=bearer(live))
    assert s == 200 and body is not None and body["upstream"] == "up"


async def test_request_and_response_bodies_stream(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, token = await mint(gw, ["items:write"])
    size = 8 * 1024 * 1024

    async def gen() -> Any:
        chunk = b"x" * 65536
        for _ in range(size // 65536):
            yield chunk

    status, _ = await call(
        http, "POST", f"{gw.url}/api/items/upload", headers=bearer(token), data=gen()
    )
    assert status == 200
    assert len(upstream.last.body) == size


async def test_large_streamed_response(
    make_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    size = 4 * 1024 * 1024

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(size // 65536):
            await resp.write(b"y" * 65536)
        await resp.write_eof()
        return resp

    up = Upstream(extra_routes=[("GET", "/api/items/big", big)])
    await up.start()
    try:
        g = await make_gateway(CORE, up=up.url, sandbox=up.url, timeout=5, trusted="10.0.0.1/32")
        await g.services.create_workspace("Acme", "acme")
        _, token = await mint(g, ["items:read"])
        async with http.get(f"{g.url}/api/items/big", headers=bearer(token)) as r:
            assert r.status == 200
            total = 0
            async for chunk in r.content.iter_chunked(65536):
                total += len(chunk)
        assert total == size
    finally:
        await up.stop()


# -- upstream failures -----------------------------------------------------------------------------


async def test_upstream_down_is_502(
    make_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    up = Upstream()
    await up.start()
    url = up.url
    await up.stop()  # a port nobody listens on any more
    g = await make_gateway(CORE, up=url, sandbox=url, timeout=2, trusted="10.0.0.1/32")
    await g.services.create_workspace("Acme", "acme")
    _, token = await mint(g, ["items:read"])
    status, body = await call(http, "GET", f"{g.url}/api/items", headers=bearer(token))
    assert status == 502
    assert body is not None and body["error"]["code"] == "UPSTREAM_UNAVAILABLE"


async def test_upstream_timeout_is_504(
    make_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    up = Upstream(extra_routes=[("GET", "/api/items/slow", slow)])
    await up.start()
    try:
        g = await make_gateway(CORE, up=up.url, sandbox=up.url, timeout=0.5, trusted="10.0.0.1/32")
        await g.services.create_workspace("Acme", "acme")
        _, token = await mint(g, ["items:read"])
        status, body = await call(http, "GET", f"{g.url}/api/items/slow", headers=bearer(token))
        assert status == 504
        assert body is not None and body["error"]["code"] == "UPSTREAM_TIMEOUT"
    finally:
        release.set()
        await up.stop()


# -- upgrades --------------------------------------------------------------------------------------


async def test_websocket_proxied_after_auth(
    make_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async def ws_echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(f"echo:{msg.data}:{request.headers.get('X-Gateway-Workspace-Slug')}")
        return ws

    up = Upstream(extra_routes=[("GET", "/ws", ws_echo)])
    await up.start()
    try:
        g = await make_gateway(CORE, up=up.url, sandbox=up.url, timeout=5, trusted="10.0.0.1/32")
        await g.services.create_workspace("Acme", "acme")
        _, token = await mint(g, ["items:read"])
        async with http.ws_connect(f"{g.url}/ws", headers=bearer(token)) as ws:
            await ws.send_str("hi")
            msg = await ws.receive(timeout=5)
            assert msg.data == "echo:hi:acme"
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await http.ws_connect(f"{g.url}/ws")
        assert exc.value.status == 401
    finally:
        await up.stop()


async def test_h2c_and_other_upgrades_are_refused(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, token = await mint(gw, ["items:read"])
    before = len(upstream.seen)
    for up in ("h2c", "TLS/1.2", "foo"):
        status, body = await call(
            http,
            "GET",
            f"{gw.url}/api/items",
            headers=bearer(token, Upgrade=up, Connection="Upgrade"),
        )
        assert status == 400, up
        assert body is not None and body["error"]["code"] == "UPGRADE_NOT_ALLOWED"
    assert len(upstream.seen) == before


# -- propagation across processes ------------------------------------------------------------------


async def test_cli_revocation_reaches_the_running_gateway_within_a_second(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    created = await asyncio.to_thread(
        cli,
        gw.config_path,
        "token",
        "create",
        "--workspace",
        "acme",
        "--name",
        "cli",
        "--scope",
        "items:read",
    )
    token = created["token"]
    assert created["prefix"] == token[:16]
    assert await _status_is(http, f"{gw.url}/api/items", token, 200)  # now cached
    listed = await asyncio.to_thread(cli, gw.config_path, "token", "list", "--workspace", "acme")
    assert token not in json.dumps(listed)
    await asyncio.to_thread(cli, gw.config_path, "token", "revoke", created["id"])
    took = await eventually(lambda: _status_is(http, f"{gw.url}/api/items", token, 401), within=1.0)
    assert took <= 1.0


async def test_role_change_and_removal_apply_to_pats_within_a_second(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    svc = gw.services
    await svc.create_user("ann@example.com")
    await svc.add_member("acme", "ann@example.com", "member")
    _, pat = await svc.create_token(
        workspace="acme", name="pat", type="pat", user="ann@example.com"
    )
    url = f"{gw.url}/api/items/1"
    async with http.delete(url, headers=bearer(pat)) as r:
        assert r.status == 200
    await svc.add_member("acme", "ann@example.com", "viewer")

    async def delete_refused() -> bool:
        async with http.delete(url, headers=bearer(pat)) as r:
            return r.status == 403

    await eventually(delete_refused, within=1.0)
    assert await _status_is(http, url, pat, 200)  # still may read
    await svc.remove_member("acme", "ann@example.com")
    # Removal revokes the member's tokens in the workspace (issue 17): refused as revoked.
    await eventually(lambda: _status_is(http, url, pat, 401), within=1.0)


async def test_last_used_is_written_in_batches(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    writes = 0
    real = gw.gw.store.record_usage

    async def counting(last_used: Mapping[str, float]) -> None:
        nonlocal writes
        writes += 1
        await real(last_used)

    gw.gw.store.record_usage = counting  # type: ignore[method-assign]
    tid, token = await mint(gw, ["items:read"])
    for _ in range(30):
        assert await _status_is(http, f"{gw.url}/api/items", token, 200)
    await gw.gw.usage.flush()
    assert 1 <= writes < 30
    rec = await gw.services.token(tid)
    assert rec.last_used_at is not None and rec.last_used_at > rec.created_at


async def test_workspace_source_token_uses_the_tokens_own_workspace(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    text = CORE.replace(
        """workspace:
  source: header
  header: X-Workspace-Id
  match: any
  required: false
  pattern: "[a-z0-9_A-Z-]+"
""",
        "workspace: {source: token}\n",
    )
    g = await make_gateway(
        text, up=upstream.url, sandbox=upstream.url, timeout=2, trusted="10.0.0.1/32"
    )
    await g.services.create_workspace("Acme", "acme", "ws_acme")
    await g.services.create_workspace("Other", "other", "ws_other")
    _, a = await mint(g, ["items:read"], ws="acme")
    _, b = await mint(g, ["items:read"], ws="other")
    for token, slug in ((a, "acme"), (b, "other")):
        # a workspace header is ignored in this mode: the token decides
        status, _ = await call(
            http, "GET", f"{g.url}/api/items", headers=bearer(token, **{"X-Workspace-Id": "acme"})
        )
        assert status == 200
        assert upstream.last.header("X-Gateway-Workspace-Slug") == slug

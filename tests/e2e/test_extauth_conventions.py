"""The decision endpoint's other doors: Caddy ``forward_auth`` (real Caddy, config/caddy/Caddyfile
as shipped), the Traefik/Caddy and Envoy conventions asked directly, host-based workspaces,
allowed domains, what may be cached, and the endpoint on a listener of its own.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.conftest import GatewayFactory
from tests.e2e.test_attacks import PATH_TRICKS
from tests.e2e.test_extauth_nginx import CONFIG, get
from tests.support.harness import RunningGateway, Upstream, eventually, write_config
from tests.support.proxies import start_forward_auth_caddy
from tests.support.rawhttp import exchange, request_bytes
from tests.support.served import Served, free_port, stop_session


@pytest.fixture
async def gw(make_gateway: GatewayFactory, upstream: Upstream) -> RunningGateway:
    gw = await make_gateway(
        CONFIG, up=upstream.url, sandbox=upstream.url, timeout=2, trusted="127.0.0.1/32"
    )
    await gw.services.create_workspace("Acme", "acme", "ws_acme")
    await gw.services.create_workspace("Other", "other", "ws_other")
    return gw


async def token(gw: RunningGateway, scopes: list[str], ws: str = "acme", **kw: object) -> str:
    _, tok = await gw.services.create_token(workspace=ws, name="t", scopes=scopes, **kw)  # type: ignore[arg-type]
    return tok


# -- Caddy forward_auth -------------------------------------------------------------------------------


async def test_caddy_forward_auth_as_shipped(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    reader = await token(gw, ["items:read"])
    other = await token(gw, ["items:read"], ws="other")
    caddy = await start_forward_auth_caddy(
        tmp_path, f"127.0.0.1:{gw.proxy_port}", f"127.0.0.1:{upstream.port}"
    )
    try:
        spoofed = {
            "Authorization": f"Bearer {reader}",
            "X-Gateway-Scopes": "admin:all",
            "X-Gateway-User-Id": "evil",
            "X_Gateway_Workspace_Id": "evil",
        }
        status, body, _ = await get(http, f"{caddy.url}/api/items/3?x=1", spoofed)
        assert status == 200, (body, caddy.errors())
        seen = upstream.last
        assert seen.path == "/api/items/3?x=1"
        assert seen.header("X-Gateway-Scopes") == "items:read"
        assert seen.header("X-Gateway-Workspace-Id") == "ws_acme"
        assert seen.header("X-Gateway-User-Id") is None
        values = [v for vs in seen.headers.values() for v in vs]
        assert not any("evil" in v or reader in v for v in values), seen.headers
        assert "authorization" not in seen.header_names()

        before = len(upstream.seen)
        for path, headers in [
            ("/api/items", {}),
            ("/admin/x", {"Authorization": f"Bearer {reader}"}),
            ("/api/items", {"Authorization": f"Bearer {other}", "X-Workspace-Id": "acme"}),
        ]:
            c_status, c_body, c_h = await get(http, caddy.url + path, headers)
            p_status, p_body, p_h = await get(http, gw.url + path, headers)
            assert c_status == p_status and c_status in (401, 403), (c_status, c_body)
            assert c_body is not None and p_body is not None
            assert {**c_body["error"], "request_id": None} == {
                **p_body["error"],
                "request_id": None,
            }
            assert c_h.getall("WWW-Authenticate", []) == p_h.getall("WWW-Authenticate", [])
        # The path-trick corpus: whatever proxy mode refuses never reaches the upstream via Caddy.
        for target in PATH_TRICKS:
            for auth in ([], [("Authorization", f"Bearer {reader}")]):
                data = request_bytes("GET", target, auth)
                assert (await exchange(gw.proxy_port, data)).status >= 400
                via = await exchange(caddy.port, data)
                assert via.status >= 400, (target, via.status)
        assert len(upstream.seen) == before, [s.path for s in upstream.seen[before:]]
    finally:
        caddy.stop()


# -- the conventions, asked directly ------------------------------------------------------------------


async def test_forwarded_convention_decides_the_forwarded_request(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    reader = await token(gw, ["items:read"])
    url = f"{gw.url}/_gateway/authz/forwarded"
    base = {"Authorization": f"Bearer {reader}", "X-Forwarded-Host": "api.example.test"}
    ok = {**base, "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/api/items/1"}
    status, _, h = await get(http, url, ok)
    assert status == 200
    assert h["X-Gateway-Scopes"] == "items:read" and h["X-Gateway-Workspace-Id"] == "ws_acme"
    assert h["X-Gateway-Strip-Headers"] == "authorization"
    assert h["X-Request-Id"]
    # Cacheable for one second at most, by nginx (X-Accel-Expires) or a private cache.
    assert h["X-Accel-Expires"] == "1" and h["Cache-Control"] == "private, max-age=1"
    # The method decided is the forwarded one, not the decision request's own.
    post = {**base, "X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/api/items/1"}
    status, body, h = await get(http, url, post)
    assert status == 403 and body is not None and body["error"]["code"] == "FORBIDDEN"
    assert h["Cache-Control"] == "no-store" and h["X-Accel-Expires"] == "0"
    assert h["X-Gateway-Error"] == '{"error":' + _compact(body["error"]) + "}"
    # Without the forwarded request there is nothing to decide: 400 naming what is missing.
    status, body, _ = await get(http, url, {**base, "X-Forwarded-Method": "GET"})
    assert status == 400 and body is not None and "X-Forwarded-Uri" in body["error"]["message"]


def _compact(error: dict[str, object]) -> str:
    import json

    return json.dumps(error, separators=(",", ":"))


async def test_envoy_convention_takes_the_path_after_the_prefix_and_the_method(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    reader = await token(gw, ["items:read"])
    auth = {"Authorization": f"Bearer {reader}"}
    base = f"{gw.url}/_gateway/authz/envoy"
    assert (await get(http, f"{base}/api/items/1?x=1", auth))[0] == 200
    status, body, _ = await get(http, f"{base}/api/items/1", auth, method="DELETE")
    assert status == 403 and body is not None and body["error"]["code"] == "FORBIDDEN"
    status, body, _ = await get(http, f"{base}/admin%2Fx", auth)
    assert status == 400 and body is not None and body["error"]["code"] == "INVALID_PATH"
    status, body, h = await get(http, f"{base}/api/items", {})
    assert status == 401 and h["WWW-Authenticate"] == 'Bearer realm="gateway"'


async def test_rate_limited_and_cors_answers_are_never_cacheable(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    reports = await token(gw, ["reports:read"])
    browser = await token(gw, ["items:read"], allowed_domains=["app.example.com"])
    url = f"{gw.url}/_gateway/authz/nginx"
    status, _, h = await get(
        http,
        url,
        {
            "Authorization": f"Bearer {reports}",
            "X-Original-Method": "GET",
            "X-Original-URI": "/reports/1",
        },
    )
    assert status == 200 and h["RateLimit-Remaining"] == "1"
    assert h["Cache-Control"] == "no-store" and h["X-Accel-Expires"] == "0"
    # Allowed domains (Velt's browser keys) are checked against the original Origin.
    ask = {"Authorization": f"Bearer {browser}", "X-Original-Method": "GET"}
    ask["X-Original-URI"] = "/api/items"
    status, _, h = await get(http, url, {**ask, "Origin": "https://app.example.com"})
    assert status == 200 and h["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert h["Cache-Control"] == "no-store"
    status, body, _ = await get(http, url, {**ask, "Origin": "https://evil.example"})
    assert status == 403 and body is not None and body["error"]["code"] == "ORIGIN_NOT_ALLOWED"


HOST_CONFIG = """
store: "{store}"
token_types:
  - {name: pat, prefix: hp_pat_, kind: pat, inherit_user_permissions: true}
workspace: {source: host, host_suffix: example.test}
upstreams: {api: {url: "{up}"}}
scopes: {known: [items:read, admin:all]}
roles: {member: [items:read], owner: [admin:all]}
trusted_proxies: ["127.0.0.1/32"]
external_auth: {}
routes:
  - {name: items, path: /api/items/**, scopes: [items:read]}
"""


async def test_host_based_workspaces_use_the_original_host(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    gw = await make_gateway(HOST_CONFIG, up=upstream.url)
    svc = gw.services
    await svc.create_workspace("Acme", "acme", "ws_acme")
    await svc.create_workspace("Other", "other", "ws_other")
    await svc.create_user("ann@acme.test", id="usr_ann")
    await svc.add_member("acme", "usr_ann", "member")
    _, pat = await svc.create_token(workspace="acme", name="p", type="pat", user="usr_ann")
    url = f"{gw.url}/_gateway/authz/forwarded"
    ask = {"Authorization": f"Bearer {pat}", "X-Forwarded-Method": "GET"}
    ask["X-Forwarded-Uri"] = "/api/items"
    status, _, h = await get(http, url, {**ask, "X-Forwarded-Host": "acme.example.test"})
    assert status == 200 and h["X-Gateway-User-Id"] == "usr_ann"
    assert h["X-Gateway-Workspace-Slug"] == "acme"
    status, body, _ = await get(http, url, {**ask, "X-Forwarded-Host": "other.example.test"})
    assert status == 403 and body is not None
    assert body["error"]["code"] == "WORKSPACE_ACCESS_DENIED"
    # Proxy mode, told the same host, decides the same.
    p_status, p_body, _ = await get(
        http,
        f"{gw.url}/api/items",
        {"Authorization": f"Bearer {pat}", "Host": "other.example.test"},
    )
    assert p_status == 403 and p_body is not None
    assert p_body["error"]["code"] == "WORKSPACE_ACCESS_DENIED"


# -- its own listener ---------------------------------------------------------------------------------

OWN_LISTENER = """
listeners: {proxy: "127.0.0.1:{proxy}"}
store: "sqlite:///{db}"
token_types:
  - {name: live, prefix: gw_live_, kind: api_key, environment: live}
upstreams: {api: {url: "{up}"}}
scopes: {known: [items:read]}
trusted_proxies: ["127.0.0.1/32"]
external_auth: {listener: "127.0.0.1:{authz}", path: /check}
routes:
  - {name: items, path: /api/items/**, scopes: [items:read]}
"""


async def test_own_listener_in_every_worker(
    tmp_path: Path, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    proxy, authz = free_port(), free_port()
    cfg = write_config(
        tmp_path, OWN_LISTENER, proxy=proxy, authz=authz, db=tmp_path / "g.db", up=upstream.url
    )
    served = Served(cfg, proxy, "--workers", "2")
    proc = served.spawn(start_new_session=True)
    try:
        await served.wait_listening(port=authz)
        await served.wait_listening(port=proxy)
        url = f"http://127.0.0.1:{authz}/check/envoy/api/items"
        status, body, _ = await get(http, url)
        assert status == 401 and body is not None and body["error"]["code"] == "UNAUTHORIZED"
        # The proxy listener does not answer decisions when they have a listener of their own.
        status, body, _ = await get(http, f"http://127.0.0.1:{proxy}/check/envoy/api/items")
        assert status == 404 and body is not None and body["error"]["code"] == "NOT_FOUND"
        # Every decision is in the access log, as the original request (the log is flushed in
        # the background, so wait for the line).
        line = '"method":"GET","route":"items","status":401'

        async def logged() -> bool:
            return line in served.log_text()

        await eventually(logged, within=5)
    finally:
        stop_session(proc)

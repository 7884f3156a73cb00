"""External authorization through real Debian nginx: config/nginx/auth_request.conf as shipped.

nginx (``auth_request``, with its 1 s decision cache on: the riskier setup) sits in front of the
recording upstream and asks the gateway's decision endpoint about every request. Each test holds
the nginx door to what the gateway's own proxy door does with the same request: the same status,
JSON body and challenge headers on refusals, the same identity headers upstream on success, the
credential and spoofed identity headers never arriving, and nothing proxy mode refuses reaching
the upstream (the path-trick corpus of test_attacks.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from tests.conftest import GatewayFactory
from tests.e2e.test_attacks import PATH_TRICKS
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.proxies import Proxy, start_auth_request_nginx
from tests.support.rawhttp import exchange, request_bytes

CONFIG = (
    CORE
    + """
external_auth: {cache_seconds: 1}
rate_limits:
  rules:
    - {name: reports, limit: 2, window: 60, per: [token], routes: [reports]}
"""
)


@dataclass
class Setup:
    gw: RunningGateway
    nginx: Proxy
    upstream: Upstream
    reader: str
    reader_id: str
    admin: str
    other: str
    reports: str


@pytest.fixture
async def setup(
    make_gateway: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> AsyncIterator[Setup]:
    gw = await make_gateway(
        CONFIG, up=upstream.url, sandbox=upstream.url, timeout=2, trusted="127.0.0.1/32"
    )
    svc = gw.services
    await svc.create_workspace("Acme", "acme", "ws_acme")
    await svc.create_workspace("Other", "other", "ws_other")
    rec, reader = await svc.create_token(workspace="acme", name="r", scopes=["items:read"])
    _, admin = await svc.create_token(workspace="acme", name="a", scopes=["admin:all"])
    _, other = await svc.create_token(workspace="other", name="o", scopes=["items:read"])
    _, reports = await svc.create_token(workspace="acme", name="p", scopes=["reports:read"])
    nginx = await start_auth_request_nginx(
        tmp_path, f"127.0.0.1:{gw.proxy_port}", f"127.0.0.1:{upstream.port}", cache=True
    )
    try:
        yield Setup(gw, nginx, upstream, reader, rec.id, admin, other, reports)
    finally:
        nginx.stop()


async def get(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> tuple[int, dict[str, Any] | None, CIMultiDictProxy[str]]:
    async with http.request(method, url, headers=headers or {}) as r:
        body = await r.read()
        try:
            data = await r.json(content_type=None) if body else None
        except ValueError:
            data = None
        return r.status, data, r.headers


# -- allowed -----------------------------------------------------------------------------------------


async def test_allowed_request_arrives_with_identity_headers_and_without_credential(
    setup: Setup, http: aiohttp.ClientSession
) -> None:
    headers = {
        "Authorization": f"Bearer {setup.reader}",
        "X-Workspace-Id": "acme",
        # Spoofed identity, in the canonical and in the "_" spelling WSGI reads as the same.
        "X-Gateway-User-Id": "evil",
        "X-Gateway-Scopes": "admin:all",
        "X_Gateway_Workspace_Id": "evil",
    }
    status, _, resp_headers = await get(http, f"{setup.nginx.url}/api/items/1?q=2", headers)
    assert status == 200, setup.nginx.errors()
    seen = setup.upstream.last
    assert seen.path == "/api/items/1?q=2"
    assert seen.header("X-Gateway-Scopes") == "items:read"
    assert seen.header("X-Gateway-Workspace-Id") == "ws_acme"
    assert seen.header("X-Gateway-Workspace-Slug") == "acme"
    assert seen.header("X-Gateway-Token-Id") == setup.reader_id
    assert seen.header("X-Gateway-Auth-Method") == "token"
    assert seen.header("X-Gateway-Environment") == "live"
    assert seen.header("X-Gateway-User-Id") is None  # a workspace key has no user: removed
    assert seen.header("X-Request-Id") == resp_headers["X-Request-Id"]
    values = [v for vs in seen.headers.values() for v in vs]
    assert not any("evil" in v for v in values), seen.headers
    assert not any(setup.reader in v for v in values), "the credential reached the upstream"
    assert "authorization" not in seen.header_names()
    assert not any("_" in name for name in seen.header_names())
    # The same request through proxy mode sends the same identity upstream.
    status, _, _ = await get(http, f"{setup.gw.url}/api/items/1?q=2", headers)
    direct = setup.upstream.last
    assert status == 200
    for name in ("X-Gateway-Scopes", "X-Gateway-Workspace-Id", "X-Gateway-Token-Id"):
        assert direct.header(name) == seen.header(name)


# -- refused exactly as in proxy mode ---------------------------------------------------------------

REFUSALS = {
    # case: (method, path, headers with {reader}/{other}, expected status, code)
    "no-credential": ("GET", "/api/items", {}, 401, "UNAUTHORIZED"),
    "bad-checksum": ("GET", "/api/items", {"Authorization": "Bearer gw_live_x"}, 401, None),
    "missing-scope": ("GET", "/admin/x", {"Authorization": "Bearer {reader}"}, 403, "FORBIDDEN"),
    "write-with-read-token": (
        "POST",
        "/api/items",
        {"Authorization": "Bearer {reader}"},
        403,
        "FORBIDDEN",
    ),
    "other-workspace": (
        "GET",
        "/api/items",
        {"Authorization": "Bearer {other}", "X-Workspace-Id": "acme"},
        403,
        "WORKSPACE_ACCESS_DENIED",
    ),
    "no-route": ("GET", "/nowhere", {"Authorization": "Bearer {reader}"}, 404, "NOT_FOUND"),
    "two-credentials": (
        "GET",
        "/api/items",
        {"Authorization": "Bearer {reader}", "X-Api-Key": "{reader}"},
        400,
        "MULTIPLE_CREDENTIALS",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_refusals_are_proxy_mode_refusals(
    setup: Setup, http: aiohttp.ClientSession, case: str
) -> None:
    method, path, raw_headers, want_status, want_code = REFUSALS[case]
    headers = {k: v.format(reader=setup.reader, other=setup.other) for k, v in raw_headers.items()}
    before = len(setup.upstream.seen)
    via_nginx = await get(http, setup.nginx.url + path, headers, method)
    via_proxy = await get(http, setup.gw.url + path, headers, method)
    assert len(setup.upstream.seen) == before, "a refused request reached the upstream"
    (status, body, h), (p_status, p_body, p_h) = via_nginx, via_proxy
    assert status == p_status == want_status, (status, body, setup.nginx.errors())
    assert body is not None and p_body is not None
    if want_code:
        assert body["error"]["code"] == want_code
    # Same body but for the request id, which names each request.
    assert {**body["error"], "request_id": None} == {**p_body["error"], "request_id": None}
    assert h.getall("WWW-Authenticate", []) == p_h.getall("WWW-Authenticate", [])
    assert h.get("Cache-Control") == "no-store"
    assert h.get("Content-Type", "").startswith("application/json")
    assert h.get("X-Request-Id") == body["error"]["request_id"]


async def test_rate_limit_refusal_is_429_with_retry_after_and_never_cached(
    setup: Setup, http: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {setup.reports}"}
    url = f"{setup.nginx.url}/reports/7"
    for remaining in ("1", "0"):
        status, _, h = await get(http, url, headers)
        assert status == 200
        # Counted by the gateway on every request: a decision with rate-limit headers is not
        # cacheable, or nginx would let the next requests through uncounted.
        assert h.get("RateLimit-Remaining") == remaining
    status, body, h = await get(http, url, headers)
    assert status == 429, (body, setup.nginx.errors())
    assert body is not None and body["error"]["code"] == "RATE_LIMITED"
    assert int(h["Retry-After"]) >= 1
    assert h.get("RateLimit-Limit") == "2" and h.get("RateLimit-Remaining") == "0"
    assert sum(1 for s in setup.upstream.seen if s.path == "/reports/7") == 2


async def test_revoked_token_is_refused_through_the_decision_cache_within_a_second(
    setup: Setup, http: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {setup.reader}"}
    url = f"{setup.nginx.url}/api/items"
    decided: list[str] = []
    gw = setup.gw.gw
    # Hooks are frozen after install: a changed set is a new object, put in as a reload would.
    gw.hooks = replace(
        gw.hooks,
        observers=(
            *gw.hooks.observers,
            lambda request, response, ctx: decided.append(ctx.request_id),
        ),
    )
    gw.apply_config(gw.config)
    for _ in range(5):  # allowed, and reused from nginx's decision cache
        assert (await get(http, url, headers))[0] == 200
    assert len(decided) < 5, "nginx asked the gateway every time: the decision cache is off"

    async def refused() -> bool:
        return (await get(http, url, headers))[0] == 401

    revoked_at = time.monotonic()
    await setup.gw.services.revoke_token(setup.reader_id)
    await eventually(refused, within=1.0)
    assert time.monotonic() - revoked_at < 1.0
    # And it stays refused: a refusal is never cached as an allow, nor an old allow served again.
    for _ in range(5):
        assert (await get(http, url, headers))[0] == 401


# -- the original request is believed only from trusted proxies ------------------------------------


async def test_spoofed_original_uri_from_an_untrusted_address_is_refused(
    setup: Setup,
) -> None:
    # 127.0.0.3 is not in trusted_proxies (127.0.0.1/32): it may not tell the gateway which
    # request it is asking about.
    spoof = {
        "Authorization": f"Bearer {setup.reader}",
        "X-Original-Method": "GET",
        "X-Original-URI": "/public/x",
    }
    url = f"{setup.gw.url}/_gateway/authz/nginx"
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.3", 0))
    async with aiohttp.ClientSession(connector=connector) as untrusted:
        status, body, h = await get(untrusted, url, spoof)
    assert status == 403
    assert body is not None and body["error"]["code"] == "UNTRUSTED_PROXY"
    assert "trusted_proxies" in body["error"]["message"]
    assert "127.0.0.3" in body["error"]["message"]
    assert h.get("Cache-Control") == "no-store"
    # The same request from the trusted address is decided (and this token may read /public).
    async with aiohttp.ClientSession() as trusted:
        assert (await get(trusted, url, spoof))[0] == 200


async def test_client_sent_original_uri_through_nginx_changes_nothing(
    setup: Setup, http: aiohttp.ClientSession
) -> None:
    headers = {
        "Authorization": f"Bearer {setup.reader}",
        "X-Original-URI": "/public/x",
        "X-Original-Method": "GET",
        "X-Forwarded-Uri": "/public/x",
        "X-Forwarded-Method": "GET",
    }
    status, body, _ = await get(http, f"{setup.nginx.url}/admin/x", headers)
    assert status == 403 and body is not None and body["error"]["code"] == "FORBIDDEN"


# -- the path-trick corpus ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", PATH_TRICKS)
@pytest.mark.parametrize("who", ["anonymous", "reader"])
async def test_path_tricks_refused_by_proxy_mode_never_pass_nginx(
    setup: Setup, target: str, who: str
) -> None:
    headers = [] if who == "anonymous" else [("Authorization", f"Bearer {setup.reader}")]
    data = request_bytes("GET", target, headers)
    before = len(setup.upstream.seen)
    proxied = await exchange(setup.gw.proxy_port, data)
    assert proxied.status >= 400 and len(setup.upstream.seen) == before  # proxy mode refuses
    via = await exchange(setup.nginx.port, data)
    assert via.status in {400, 401, 403, 404, 405}, (via.status, via.body[:300])
    assert len(setup.upstream.seen) == before, [s.path for s in setup.upstream.seen[before:]]

"""External authorization held against a hostile client behind the shipped nginx and Caddy configs
(the issue 19 review): what proxy mode removes from a request must not reach the upstream through
the other door either, or the decision must refuse what the proxy cannot remove.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import GatewayFactory
from tests.e2e.test_extauth_conventions import HOST_CONFIG
from tests.e2e.test_extauth_nginx import CONFIG, Setup, get, setup  # noqa: F401
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway, Upstream
from tests.support.proxies import Proxy, start_auth_request_nginx, start_forward_auth_caddy

# Routes honouring method overrides: POST needs items:read, the DELETE a `_method` asks for admin.
OVERRIDE_ROUTES = """
  - {name: forms, path: /forms/**, methods: [POST], scopes: [items:read], method_override: true}
  - name: forms-delete
    path: /forms/**
    methods: [DELETE]
    scopes: [admin:all]
    method_override: true
"""

# Headers proxy mode withholds from the upstream by name (gateway/edge/headerpolicy.py), with values a
# hostile client would send.
WITHHELD = {
    "X-Original-URL": "/admin/x",
    "X-Rewrite-URL": "/admin/x",
    "X-Original-URI": "/admin/x",
    "X-Authorization": "Bearer spoofed",
    "True-Client-IP": "198.51.100.7",
    "X-Client-IP": "198.51.100.7",
    "CF-Connecting-IP": "198.51.100.7",
    "X-Forwarded-Prefix": "/evil",
    "X-Host": "evil.example",
    "X-Real-IP": "198.51.100.7",
    "Forwarded": "for=198.51.100.7;host=evil.example",
}


@pytest.fixture
async def gw(make_gateway: GatewayFactory, upstream: Upstream) -> RunningGateway:
    gw = await make_gateway(
        CORE + OVERRIDE_ROUTES + CONFIG[len(CORE) :],
        up=upstream.url,
        sandbox=upstream.url,
        timeout=2,
        trusted="127.0.0.1/32",
    )
    await gw.services.create_workspace("Acme", "acme", "ws_acme")
    return gw


@pytest.fixture(params=["nginx", "caddy"])
async def proxy(
    request: pytest.FixtureRequest, gw: RunningGateway, upstream: Upstream, tmp_path: Path
) -> AsyncIterator[Proxy]:
    authz, app = f"127.0.0.1:{gw.proxy_port}", f"127.0.0.1:{upstream.port}"
    if request.param == "nginx":
        started = await start_auth_request_nginx(tmp_path, authz, app, cache=True)
    else:
        started = await start_forward_auth_caddy(tmp_path, authz, app)
    try:
        yield started
    finally:
        started.stop()


async def reader(gw: RunningGateway) -> str:
    _, tok = await gw.services.create_token(workspace="acme", name="r", scopes=["items:read"])
    return tok


async def test_headers_proxy_mode_withholds_never_reach_the_upstream_through_the_proxy(
    gw: RunningGateway, proxy: Proxy, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {await reader(gw)}", **WITHHELD}
    # What the gateway tells a proxy to strip from this request (asked directly, as nginx asks).
    ask = {**headers, "X-Original-Method": "GET", "X-Original-URI": "/api/items/1"}
    async with http.get(f"{gw.url}/_gateway/authz/nginx", headers=ask) as r:
        assert r.status == 200
        named = set(r.headers["X-Gateway-Strip-Headers"].split(", "))
    assert {n.lower() for n in WITHHELD} - {"x-real-ip", "forwarded"} <= named
    status, body, _ = await get(http, f"{proxy.url}/api/items/1", headers)
    assert status == 200, (body, proxy.errors())
    seen = upstream.last
    arrived = {n: seen.header(n) for n in WITHHELD if seen.header(n) == WITHHELD[n]}
    assert not arrived, f"withheld in proxy mode, but reached the upstream: {arrived}"


async def test_gateway_namespace_headers_never_reach_the_upstream(
    gw: RunningGateway, proxy: Proxy, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    # Not an identity header the proxies overwrite: nginx cannot remove it by prefix, so the
    # decision refuses it; Caddy removes the whole namespace before asking.
    headers = {"Authorization": f"Bearer {await reader(gw)}", "X-Gateway-Role": "admin"}
    before = len(upstream.seen)
    status, body, _ = await get(http, f"{proxy.url}/api/items/1", headers)
    if proxy.dir.name == "nginx":
        assert status == 400, (body, proxy.errors())
        assert body is not None and body["error"]["code"] == "BAD_REQUEST"
        assert len(upstream.seen) == before
    else:
        assert status == 200, (body, proxy.errors())
        assert upstream.last.header("X-Gateway-Role") is None


REFUSED_HEADERS = {
    # Method overrides on a route honouring none: passed on, the upstream would perform them.
    "override": ("X-HTTP-Method-Override", "DELETE"),
    "override-method": ("X-HTTP-Method", "DELETE"),
    "override-x": ("X-Method-Override", "DELETE"),
    # `_` spellings WSGI/CGI upstreams read as the `-` header (nginx drops them; Caddy does not).
    "twin-forwarded-host": ("X_Forwarded_Host", "evil.example"),
    "twin-authorization": ("X_Authorization", "Bearer spoofed"),
    "twin-original-url": ("X_Original_URL", "/admin/x"),
    "twin-override": ("X_HTTP_Method_Override", "DELETE"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_HEADERS))
async def test_headers_no_proxy_strips_are_refused_and_never_reach_the_upstream(
    gw: RunningGateway,
    proxy: Proxy,
    upstream: Upstream,
    http: aiohttp.ClientSession,
    case: str,
) -> None:
    name, value = REFUSED_HEADERS[case]
    _, writer = await gw.services.create_token(workspace="acme", name="w", scopes=["items:write"])
    headers = {"Authorization": f"Bearer {writer}", name: value}
    before = len(upstream.seen)
    status, body, _ = await get(http, f"{proxy.url}/api/items/1", headers, "POST")
    assert status in {200, 400}, (status, body, proxy.errors())
    arrived = [s.header(name) for s in upstream.seen[before:]]
    assert value not in arrived, f"{name} reached the upstream"
    # Asked directly (any proxy that passes it on), the decision refuses it.
    ask = {**headers, "X-Original-Method": "POST", "X-Original-URI": "/api/items/1"}
    async with http.get(f"{gw.url}/_gateway/authz/nginx", headers=ask) as r:
        assert r.status == 400, await r.text()


async def test_a_decided_method_override_header_reaches_the_upstream(
    gw: RunningGateway, proxy: Proxy, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    # On a route honouring overrides the decision is made for the overridden method, and the
    # upstream performs that one: the header must arrive (and a reader may not DELETE).
    _, admin = await gw.services.create_token(workspace="acme", name="a", scopes=["admin:all"])
    override = {"X-HTTP-Method-Override": "DELETE"}
    status, body, _ = await get(
        http, f"{proxy.url}/forms/1", {"Authorization": f"Bearer {admin}", **override}, "POST"
    )
    assert status == 200, (body, proxy.errors())
    assert upstream.last.header("X-HTTP-Method-Override") == "DELETE"
    before = len(upstream.seen)
    reader_auth = {"Authorization": f"Bearer {await reader(gw)}", **override}
    status, body, _ = await get(http, f"{proxy.url}/forms/1", reader_auth, "POST")
    assert status == 403, (body, proxy.errors())
    assert len(upstream.seen) == before


@pytest.mark.parametrize("query", ["_method=DELETE", "%5Fmethod=DELETE", "a=1&_method=delete"])
async def test_a_method_override_in_the_query_is_refused_where_proxy_mode_strips_it(
    gw: RunningGateway,
    proxy: Proxy,
    upstream: Upstream,
    http: aiohttp.ClientSession,
    query: str,
) -> None:
    # POST to a read-only path: a framework behind the proxy honouring `_method` would delete.
    _, writer = await gw.services.create_token(workspace="acme", name="w", scopes=["items:write"])
    before = len(upstream.seen)
    headers = {"Authorization": f"Bearer {writer}"}
    status, body, _ = await get(http, f"{proxy.url}/api/items/1?{query}", headers, "POST")
    assert status == 400, (body, proxy.errors())
    assert len(upstream.seen) == before, upstream.last.path
    # Proxy mode forwards it, without the override.
    assert (await get(http, f"{gw.url}/api/items/1?{query}", headers, "POST"))[0] == 200
    assert "_method" not in upstream.last.path.lower().replace("%5f", "_")


async def test_a_form_body_override_is_not_authorized_as_the_request_line_method(
    gw: RunningGateway, proxy: Proxy, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    # items:read may POST /forms, only admin:all may DELETE; the body's `_method` asks for DELETE.
    headers = {
        "Authorization": f"Bearer {await reader(gw)}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    before = len(upstream.seen)
    async with http.post(f"{proxy.url}/forms/1", data=b"_method=DELETE", headers=headers) as r:
        status = r.status
    assert status in {400, 403}, (status, proxy.errors())
    assert len(upstream.seen) == before, "the upstream got a DELETE the decision never saw"
    # Proxy mode reads the body and refuses: the reader may not DELETE.
    async with http.post(f"{gw.url}/forms/1", data=b"_method=DELETE", headers=headers) as r:
        assert r.status == 403


async def test_the_strip_list_names_client_address_headers_no_proxy_sets(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    # Envoy removes what x-envoy-auth-headers-to-remove names and sets neither header itself:
    # unnamed, a client's X-Real-IP and Forwarded reached the upstream, which proxy mode never lets.
    spoofed = {
        "Authorization": f"Bearer {await reader(gw)}",
        "X-Real-IP": "198.51.100.7",
        "Forwarded": "for=198.51.100.7",
    }
    async with http.get(f"{gw.url}/_gateway/authz/envoy/api/items/1", headers=spoofed) as r:
        assert r.status == 200
        named = r.headers["X-Envoy-Auth-Headers-To-Remove"].split(", ")
    assert {"x-real-ip", "forwarded", "authorization"} <= set(named)
    assert "x-forwarded-for" not in named  # the proxy's own


@pytest.mark.parametrize("door", ["proxy", "forwarded"])
async def test_a_host_with_more_labels_before_the_suffix_names_no_organization(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession, door: str
) -> None:
    # `other.acme.example.test`: the gateway read the organization as the first label (other),
    # an upstream stripping the suffix reads the last one (acme). A member of `other` was let in
    # with a Host that the upstream may serve as acme's: two readings, so neither is taken.
    gw = await make_gateway(HOST_CONFIG, up=upstream.url)
    svc = gw.services
    await svc.create_workspace("Acme", "acme", "ws_acme")
    await svc.create_workspace("Other", "other", "ws_other")
    await svc.create_user("eve@other.test", id="usr_eve")
    await svc.add_member("other", "usr_eve", "member")
    _, pat = await svc.create_token(workspace="other", name="p", type="pat", user="usr_eve")
    auth = {"Authorization": f"Bearer {pat}"}
    for host, want in (("other.example.test", 200), ("other.acme.example.test", 400)):
        if door == "proxy":
            status, body, _ = await get(http, f"{gw.url}/api/items", {**auth, "Host": host})
        else:
            ask = {**auth, "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/api/items"}
            url = f"{gw.url}/_gateway/authz/forwarded"
            status, body, _ = await get(http, url, {**ask, "X-Forwarded-Host": host})
        assert status == want, (host, body)
        if want == 400:
            assert body is not None and body["error"]["code"] == "WORKSPACE_REQUIRED"


async def test_a_second_workspace_header_never_rides_on_a_cached_decision(
    setup: Setup,  # noqa: F811 (the fixture of test_extauth_nginx)
    http: aiohttp.ClientSession,
) -> None:
    # nginx before 1.23 keys the decision cache on the first of several same-named headers only:
    # a request adding `X-Workspace-Id: other` after the decided `acme` reused acme's allowed
    # decision, and the upstream received both values (a framework keeping the last reads
    # `other`). Through the gateway itself two workspace headers are 400.
    auth = ("Authorization", f"Bearer {setup.reader}")
    for i in range(10):  # pairs: most land in one half-second slot of nginx's cache key
        url = f"{setup.nginx.url}/api/items/{i}"
        async with http.get(url, headers=[auth, ("X-Workspace-Id", "acme")]) as r:
            assert r.status == 200, setup.nginx.errors()
        before = len(setup.upstream.seen)
        two = [auth, ("X-Workspace-Id", "acme"), ("X-Workspace-Id", "other")]
        async with http.get(url, headers=two) as r:
            status = r.status
        if status == 200:
            seen = setup.upstream.last.headers
            values = [v for k, vs in seen.items() if k.lower() == "x-workspace-id" for v in vs]
            assert values == ["acme"], values
        else:
            assert status == 400 and len(setup.upstream.seen) == before

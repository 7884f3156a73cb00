"""Edge attacks that need their own upstream or config (issue 17 §3 and §5), beside test_attacks.py.

Slow request bodies, an upstream at its connection cap, ``Expect: 100-continue`` against an
upstream that never sends 100, routes that opt in to method overrides, and client-address headers
from a trusted proxy. Requests go over raw sockets (tests/support/rawhttp.py) so nothing
normalises them; the upstreams are real servers on loopback that record what they received.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.conftest import GatewayFactory
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.rawhttp import exchange, parse, request_bytes

# CORE with a short pause allowed inside a body, a connection cap on the upstream, and routes
# that honour method overrides.
EDGE = (
    CORE.replace("    connect_timeout: 2\n", "    connect_timeout: 2\n    max_connections: 2\n")
    .replace("known: [items:read, items:write,", "known: [items:read, items:write, items:delete,")
    .replace(
        "routes:\n",
        "routes:\n"
        "  - {name: o-post, path: /o/**, methods: [POST], scopes: [items:write],"
        " method_override: true}\n"
        "  - {name: o-delete, path: /o/**, methods: [DELETE], scopes: [items:delete],"
        " method_override: true}\n"
        "  - {name: o-get, path: /o/**, methods: [GET], scopes: [items:read]}\n",
    )
    + "limits: {body_read_timeout: 0.5}\n"
)


@pytest.fixture
async def held() -> AsyncIterator[tuple[Upstream, asyncio.Event, list[int]]]:
    """An upstream whose ``/api/items/hold`` answers only once released; counts who waits."""
    release = asyncio.Event()
    waiting = [0]

    async def hold(request: web.Request) -> web.Response:
        waiting[0] += 1
        try:
            await release.wait()
        finally:
            waiting[0] -= 1
        return web.Response(text="released")

    up = Upstream(extra_routes=[("GET", "/api/items/hold", hold)])
    await up.start()
    yield up, release, waiting
    release.set()
    await up.stop()


@pytest.fixture
async def gw(
    make_gateway: GatewayFactory, held: tuple[Upstream, asyncio.Event, list[int]]
) -> RunningGateway:
    up, _, _ = held
    # The upstream timeout (20 s) is far longer than any wait these tests allow: whatever
    # answers quickly was decided by the edge, not by the upstream timing out.
    g = await make_gateway(EDGE, up=up.url, sandbox=up.url, timeout=20, trusted="10.9.9.9/32")
    await g.services.create_workspace("Acme", "acme")
    return g


async def token(gw: RunningGateway, *scopes: str) -> str:
    _, plaintext = await gw.services.create_token(workspace="acme", name="t", scopes=list(scopes))
    return plaintext


# -- slow bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_that_stops_arriving_is_408_and_frees_the_upstream_connection(
    gw: RunningGateway, held: tuple[Upstream, asyncio.Event, list[int]], framing: str
) -> None:
    up, _, _ = held
    assert up.runner is not None and up.runner.server is not None
    auth = [("Authorization", f"Bearer {await token(gw, 'items:write')}")]
    if framing == "chunked":
        head = request_bytes("POST", "/api/items", [*auth, ("Transfer-Encoding", "chunked")])
        first = b"5\r\nhello\r\n"
    else:
        head = request_bytes("POST", "/api/items", [*auth, ("Content-Length", "100")])
        first = b"hello"
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.proxy_port)
    started = time.monotonic()
    try:
        writer.write(head + first)  # then nothing more: the client stalls mid-body
        await writer.drain()
        data = await asyncio.wait_for(reader.readuntil(b"}}"), 5)  # the end of the JSON error
    finally:
        writer.close()
    resp = parse(data, False)
    assert (resp.status, resp.code) == (408, "REQUEST_TIMEOUT"), data[:300]
    assert time.monotonic() - started < 3  # body_read_timeout (0.5 s), not the upstream's 20 s
    assert up.seen == []  # the upstream never got a whole request
    # The upstream connection the body was streaming into is given up, not held open.
    server = up.runner.server

    async def upstream_idle() -> bool:
        return not server.connections

    await eventually(upstream_idle, within=3)


async def test_a_steady_body_with_short_pauses_is_forwarded_whole(
    gw: RunningGateway, held: tuple[Upstream, asyncio.Event, list[int]]
) -> None:
    up, _, _ = held
    auth = [("Authorization", f"Bearer {await token(gw, 'items:write')}")]
    head = request_bytes("POST", "/api/items", [*auth, ("Content-Length", "12")])
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.proxy_port)
    try:
        writer.write(head)
        for part in (b"abcd", b"efgh", b"ijkl"):  # 0.2 s apart: each pause under the 0.5 s limit
            await asyncio.sleep(0.2)
            writer.write(part)
            await writer.drain()
        data = await asyncio.wait_for(reader.readuntil(b"}"), 5)
    finally:
        writer.close()
    assert parse(data, False).status == 200
    assert up.last.body == b"abcdefghijkl"


# -- the connection cap per upstream ---------------------------------------------------------------


async def test_past_the_upstream_connection_cap_requests_get_503_upstream_busy(
    gw: RunningGateway, held: tuple[Upstream, asyncio.Event, list[int]]
) -> None:
    up, release, waiting = held
    auth = [("Authorization", f"Bearer {await token(gw, 'items:read')}")]
    hold = request_bytes("GET", "/api/items/hold", auth)
    first = [asyncio.create_task(exchange(gw.proxy_port, hold, timeout=10)) for _ in range(2)]

    async def both_held() -> bool:
        return waiting[0] == 2

    await eventually(both_held, within=5)
    started = time.monotonic()
    busy = await exchange(gw.proxy_port, request_bytes("GET", "/api/items/x", auth))
    assert (busy.status, busy.code) == (503, "UPSTREAM_BUSY"), busy.body
    assert busy.headers.get("retry-after") == "1"
    assert time.monotonic() - started < 1  # refused at once, not queued
    assert [s.path for s in up.seen] == []  # nothing beyond the two held requests reached it
    release.set()
    assert [r.status for r in await asyncio.gather(*first)] == [200, 200]
    # The slots are given back: the next request passes.
    again = await exchange(gw.proxy_port, request_bytes("GET", "/api/items/x", auth))
    assert again.status == 200


# -- Expect: 100-continue ------------------------------------------------------------------------


class NoContinueUpstream:
    """An HTTP/1.1 upstream that never sends ``100 Continue``: it waits for the whole body."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.bodies.append(body)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def no_continue() -> AsyncIterator[NoContinueUpstream]:
    up = NoContinueUpstream()
    await up.start()
    yield up
    await up.stop()


@pytest.fixture
async def gw_nc(make_gateway: GatewayFactory, no_continue: NoContinueUpstream) -> RunningGateway:
    url = f"http://127.0.0.1:{no_continue.port}"
    g = await make_gateway(EDGE, up=url, sandbox=url, timeout=20, trusted="10.9.9.9/32")
    await g.services.create_workspace("Acme", "acme")
    return g


async def test_expect_100_continue_is_answered_by_the_gateway_after_authorization(
    gw_nc: RunningGateway, no_continue: NoContinueUpstream
) -> None:
    auth = [("Authorization", f"Bearer {await token(gw_nc, 'items:write')}")]
    head = request_bytes(
        "POST", "/api/items", [*auth, ("Content-Length", "5"), ("Expect", "100-continue")]
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", gw_nc.proxy_port)
    try:
        writer.write(head)
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert interim.startswith(b"HTTP/1.1 100 Continue"), interim
        writer.write(b"hello")
        await writer.drain()
        started = time.monotonic()
        final = await asyncio.wait_for(reader.readuntil(b"hello"), 3)
    finally:
        writer.close()
    assert parse(final, False).status == 200
    assert time.monotonic() - started < 2  # not the upstream's 20 s timeout
    assert no_continue.bodies == [b"hello"]
    assert b"expect" not in no_continue.heads[0].lower()


async def test_expect_100_continue_gets_no_continue_before_a_refusal(
    gw_nc: RunningGateway, no_continue: NoContinueUpstream
) -> None:
    # Unauthenticated: the client is told 401 without first being invited to send its body.
    head = request_bytes(
        "POST", "/api/items", [("Content-Length", "5"), ("Expect", "100-continue")]
    )
    resp = await exchange(gw_nc.proxy_port, head)
    assert (resp.status, resp.code) == (401, "UNAUTHORIZED")
    # A scope refusal likewise.
    auth = [("Authorization", f"Bearer {await token(gw_nc, 'items:read')}")]
    head = request_bytes(
        "POST", "/api/items", [*auth, ("Content-Length", "5"), ("Expect", "100-continue")]
    )
    resp = await exchange(gw_nc.proxy_port, head)
    assert (resp.status, resp.code) == (403, "FORBIDDEN")
    assert no_continue.heads == []


async def test_an_unknown_expectation_is_417(
    gw_nc: RunningGateway, no_continue: NoContinueUpstream
) -> None:
    auth = [("Authorization", f"Bearer {await token(gw_nc, 'items:write')}")]
    head = request_bytes(
        "POST", "/api/items", [*auth, ("Content-Length", "5"), ("Expect", "something-else")]
    )
    resp = await exchange(gw_nc.proxy_port, head + b"hello")
    assert (resp.status, resp.code) == (417, "EXPECTATION_FAILED")
    assert no_continue.heads == []


# -- method overrides on routes that opt in ------------------------------------------------------

OVERRIDES = {
    "header": ([("X-HTTP-Method-Override", "DELETE")], "", b""),
    "x-http-method": ([("X-HTTP-Method", "delete")], "", b""),
    "x-method-override": ([("X-Method-Override", "DELETE")], "", b""),
    "query": ([], "?_method=DELETE", b""),
    # PHP (Laravel, Symfony) reads `.method` as `_method` (issue 17 review)
    "query-php-dot": ([], "?.method=DELETE", b""),
    "form-php-dot": (
        [("Content-Type", "application/x-www-form-urlencoded")],
        "",
        b"name=x&.method=DELETE",
    ),
    "form": (
        [("Content-Type", "application/x-www-form-urlencoded")],
        "",
        b"name=x&_method=DELETE",
    ),
}


@pytest.mark.parametrize("how", sorted(OVERRIDES))
async def test_an_opted_in_override_is_authorized_as_the_overridden_method(
    gw: RunningGateway, held: tuple[Upstream, asyncio.Event, list[int]], how: str
) -> None:
    up, _, _ = held
    extra, query, body = OVERRIDES[how]
    framing = [("Content-Length", str(len(body)))]

    def post(tok: str) -> bytes:
        headers = [("Authorization", f"Bearer {tok}"), *extra, *framing]
        return request_bytes("POST", f"/o/1{query}", headers, body)

    # items:write allows POST, but this POST asks the upstream to DELETE: DELETE's scope rules.
    writer = await token(gw, "items:write")
    resp = await exchange(gw.proxy_port, post(writer))
    assert (resp.status, resp.code) == (403, "FORBIDDEN"), resp.body
    assert up.seen == []
    deleter = await token(gw, "items:delete")
    resp = await exchange(gw.proxy_port, post(deleter))
    assert resp.status == 200, resp.body
    # The route honours overrides, so the upstream gets the override it will act on.
    seen = up.last
    assert seen.method == "POST" and seen.path == f"/o/1{query}" and seen.body == body
    for name, value in extra:
        assert seen.header(name) == value


async def test_an_override_to_a_route_that_does_not_opt_in_is_refused(
    gw: RunningGateway, held: tuple[Upstream, asyncio.Event, list[int]]
) -> None:
    up, _, _ = held
    tok = await token(gw, "items:write", "items:read")
    headers = [("Authorization", f"Bearer {tok}"), ("X-HTTP-Method-Override", "GET")]
    resp = await exchange(gw.proxy_port, request_bytes("POST", "/o/1", headers))
    assert (resp.status, resp.code) == (400, "BAD_REQUEST"), resp.body
    conflicting = [
        ("Authorization", f"Bearer {tok}"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-Method-Override", "PUT"),
    ]
    resp = await exchange(gw.proxy_port, request_bytes("POST", "/o/1", conflicting))
    assert (resp.status, resp.code) == (400, "BAD_REQUEST"), resp.body
    assert up.seen == []


# -- client-address headers from a trusted proxy ---------------------------------------------------


async def test_a_trusted_proxy_may_pass_client_address_headers(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    g = await make_gateway(
        CORE, up=upstream.url, sandbox=upstream.url, timeout=5, trusted="127.0.0.1/32"
    )
    headers = [("X-Client-IP", "203.0.113.7"), ("X_Client_IP", "6.6.6.6"), ("X-Gateway-Role", "x")]
    resp = await exchange(g.proxy_port, request_bytes("GET", "/public/x", headers))
    assert resp.status == 200
    seen = upstream.last
    assert seen.header("X-Client-IP") == "203.0.113.7"
    assert "x_client_ip" not in seen.header_names() and "x-gateway-role" not in seen.header_names()

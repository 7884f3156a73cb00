"""Limits: what one client may cost, each breach answered with a clear status (issue 9).

Header size and count, request-line length, body size per route (declared and streamed), the
whole-request deadline, idle and slowloris connections, and open connections per worker, all
against the running gateway over real sockets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.conftest import GatewayFactory
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway, Upstream
from tests.support.rawhttp import exchange, parse, read_until_closed, request_bytes

LIMITS = (
    CORE
    + """
  - {name: upload, path: /upload/**, methods: [POST], scopes: [items:write], max_body_bytes: 1024}
limits:
  max_body_bytes: 4096
  max_header_bytes: 2048
  max_line_bytes: 4096
  max_headers: 30
  request_timeout: 0.5
  idle_timeout: 0.6
  max_connections: 4
"""
)


@pytest.fixture
async def slow_upstream() -> AsyncIterator[tuple[Upstream, asyncio.Event]]:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    up = Upstream(extra_routes=[("GET", "/api/items/slow", slow)])
    await up.start()
    yield up, release
    release.set()
    await up.stop()


@pytest.fixture
async def gw(
    make_gateway: GatewayFactory, slow_upstream: tuple[Upstream, asyncio.Event]
) -> RunningGateway:
    up, _ = slow_upstream
    # Upstream timeout (5 s) well past the request deadline (0.5 s): the deadline must win.
    g = await make_gateway(LIMITS, up=up.url, sandbox=up.url, timeout=5, trusted="10.9.9.9/32")
    await g.services.create_workspace("Acme", "acme")
    return g


async def writer_token(gw: RunningGateway) -> str:
    _, token = await gw.services.create_token(
        workspace="acme", name="w", scopes=["items:read", "items:write"]
    )
    return token


# -- headers ---------------------------------------------------------------------------------------


async def test_oversized_header_is_431(
    gw: RunningGateway, slow_upstream: tuple[Upstream, asyncio.Event]
) -> None:
    up, _ = slow_upstream
    token = await writer_token(gw)
    big = [("Authorization", f"Bearer {token}"), ("X-Big", "a" * 3000)]
    resp = await exchange(gw.proxy_port, request_bytes("GET", "/api/items", big))
    assert resp.status == 431 and resp.code == "HEADERS_TOO_LARGE"
    assert up.seen == []
    # just under the limit passes
    ok = [("Authorization", f"Bearer {token}"), ("X-Big", "a" * 1900)]
    assert (await exchange(gw.proxy_port, request_bytes("GET", "/api/items", ok))).status == 200


async def test_too_many_headers_is_431(
    gw: RunningGateway, slow_upstream: tuple[Upstream, asyncio.Event]
) -> None:
    up, _ = slow_upstream
    token = await writer_token(gw)
    many = [("Authorization", f"Bearer {token}")] + [(f"X-H{i}", "v") for i in range(40)]
    resp = await exchange(gw.proxy_port, request_bytes("GET", "/api/items", many))
    assert resp.status == 431 and resp.code == "HEADERS_TOO_LARGE"
    assert up.seen == []


async def test_overlong_request_line_is_414(gw: RunningGateway) -> None:
    resp = await exchange(gw.proxy_port, request_bytes("GET", "/public/" + "a" * 5000))
    assert resp.status == 414 and resp.code == "URI_TOO_LONG"


async def test_a_refused_oversized_header_is_not_logged(
    gw: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    token = await writer_token(gw)
    # The token sits inside the oversized line: aiohttp's own message would quote it.
    line = [("Authorization", f"Bearer {token}" + "x" * 3000)]
    resp = await exchange(gw.proxy_port, request_bytes("GET", "/api/items", line))
    assert resp.status == 431
    assert token not in caplog.text and token[:20] not in caplog.text


# -- bodies ----------------------------------------------------------------------------------------


async def test_route_body_limit_declared_length_is_413_before_upstream(
    gw: RunningGateway, slow_upstream: tuple[Upstream, asyncio.Event]
) -> None:
    up, _ = slow_upstream
    token = await writer_token(gw)
    auth = [("Authorization", f"Bearer {token}")]
    ok = request_bytes("POST", "/upload/a", [*auth, ("Content-Length", "1024")], b"x" * 1024)
    assert (await exchange(gw.proxy_port, ok)).status == 200
    assert up.last.body == b"x" * 1024
    n = len(up.seen)
    big = request_bytes("POST", "/upload/a", [*auth, ("Content-Length", "1025")], b"x" * 1025)
    resp = await exchange(gw.proxy_port, big)
    assert resp.status == 413 and resp.code == "PAYLOAD_TOO_LARGE"
    assert "1024" in resp.json()["error"]["message"]
    assert len(up.seen) == n


async def test_route_body_limit_streamed_chunked_is_413(
    gw: RunningGateway, slow_upstream: tuple[Upstream, asyncio.Event]
) -> None:
    up, _ = slow_upstream
    token = await writer_token(gw)
    head = [("Authorization", f"Bearer {token}"), ("Transfer-Encoding", "chunked")]
    chunk = b"400\r\n" + b"y" * 1024 + b"\r\n"
    body = chunk * 3 + b"0\r\n\r\n"  # 3 KiB against a 1 KiB limit, length undeclared
    resp = await exchange(gw.proxy_port, request_bytes("POST", "/upload/b", head, body))
    assert resp.status == 413 and resp.code == "PAYLOAD_TOO_LARGE"
    # The upstream never received a complete request: it recorded nothing.
    assert all(s.path != "/upload/b" for s in up.seen)


async def test_global_body_limit_applies_to_routes_without_their_own(
    gw: RunningGateway, slow_upstream: tuple[Upstream, asyncio.Event]
) -> None:
    _up, _ = slow_upstream
    token = await writer_token(gw)
    auth = [("Authorization", f"Bearer {token}")]
    ok = request_bytes("POST", "/api/items", [*auth, ("Content-Length", "4096")], b"z" * 4096)
    assert (await exchange(gw.proxy_port, ok)).status == 200
    big = request_bytes("POST", "/api/items", [*auth, ("Content-Length", "4097")], b"z" * 4097)
    assert (await exchange(gw.proxy_port, big)).status == 413


# -- time ------------------------------------------------------------------------------------------


async def test_request_deadline_is_504_even_when_the_upstream_timeout_is_longer(
    gw: RunningGateway,
) -> None:
    token = await writer_token(gw)
    started = time.monotonic()
    resp = await exchange(
        gw.proxy_port,
        request_bytes("GET", "/api/items/slow", [("Authorization", f"Bearer {token}")]),
    )
    assert resp.status == 504 and resp.code == "UPSTREAM_TIMEOUT"
    assert time.monotonic() - started < 4  # the 5 s upstream timeout did not decide it


async def test_slowloris_is_closed_after_the_idle_timeout(gw: RunningGateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.proxy_port)
    started = time.monotonic()
    partial = b"GET /public/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    closed = False
    try:
        # Trickle one byte every 0.1 s, never finishing the headers; bounded to 5 s.
        for i in range(50):
            writer.write(partial[i : i + 1] if i < len(partial) else b"a")
            await writer.drain()
            _data, closed = await read_until_closed(reader, 0.1)
            if closed:
                break
    except ConnectionError:
        closed = True
    finally:
        writer.close()
    assert closed, "a client trickling headers kept its connection"
    assert time.monotonic() - started < 3


async def test_idle_keepalive_connection_is_closed(gw: RunningGateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.proxy_port)
    try:
        writer.write(request_bytes("GET", "/public/x"))
        await writer.drain()
        data, closed = await read_until_closed(reader, 5)
    finally:
        writer.close()
    assert closed, "an idle keep-alive connection stayed open"
    assert parse(data, closed).status == 200


async def test_connections_past_the_per_worker_cap_get_503(gw: RunningGateway) -> None:
    held = []
    try:
        # Four connections, each mid-request (so none is reaped as idle during the test).
        for _ in range(4):
            r, w = await asyncio.open_connection("127.0.0.1", gw.proxy_port)
            w.write(b"GET /public/x HTTP/1.1\r\n")
            await w.drain()
            held.append((r, w))
        resp = await exchange(gw.proxy_port, request_bytes("GET", "/public/x"), to_close=True)
        assert resp.status == 503 and resp.code == "TOO_MANY_CONNECTIONS"
        assert resp.headers["retry-after"] == "1" and resp.closed
    finally:
        for _, w in held:
            w.close()
    # Once they are gone, new connections are served again.
    deadline = time.monotonic() + 3
    while True:
        resp = await exchange(gw.proxy_port, request_bytes("GET", "/public/x"))
        if resp.status == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert resp.status == 200

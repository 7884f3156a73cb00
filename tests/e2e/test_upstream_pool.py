"""The pooled upstream exchange (gateway/forward/upstream.py) against a real upstream on a loopback port.

Bodiless requests to plain-http upstreams bypass ClientSession; these tests pin down what that
path must still do: reuse keep-alive connections, never reuse one whose response was not read to
its end or that the upstream closed, retry an idempotent request once when a kept-alive connection
turns out closed, skip 1xx interim responses, keep the base URL's path, and answer a garbled
upstream with 502.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from multidict import CIMultiDict

from gateway import config as config_mod
from gateway.forward.upstream import UpstreamPool, UpstreamPools
from tests.conftest import GatewayFactory
from tests.support.calls import send
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway

OK = b'{"ok":true}'


def ok(extra: bytes = b"", body: bytes = OK) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


# (connection number, request number on that connection, request head) -> bytes to send back,
# or None to close the connection without answering.
Behaviour = Callable[[int, int, bytes], bytes | None]


@dataclass
class ScriptedUpstream:
    """A raw HTTP/1.1 upstream that answers as its script says and records what it saw."""

    behave: Behaviour
    heads: list[bytes] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    connections: int = 0
    closed_by_peer: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        conn = self.connections
        n = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.closed_by_peer.set()  # the gateway closed this connection
                    return
                n += 1
                self.heads.append(head)
                answer = self.behave(conn, n, head)
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer:
                    return
        except ConnectionError:
            self.closed_by_peer.set()
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


Started = tuple[RunningGateway, str, ScriptedUpstream]


@pytest.fixture
async def serve(
    make_gateway: GatewayFactory,
) -> AsyncIterator[Callable[..., Awaitable[Started]]]:
    """Start a scripted upstream and a gateway in front of it; yields (gateway, token, upstream)."""
    ups: list[ScriptedUpstream] = []

    async def start(behave: Behaviour, path: str = "", userinfo: str = "") -> Started:
        up = ScriptedUpstream(behave)
        ups.append(up)
        url = (await up.start()).replace("http://", "http://" + userinfo) + path
        g = await make_gateway(CORE, up=url, sandbox=url, timeout=5, trusted="10.0.0.1/32")
        await g.services.create_workspace("Acme", "acme")
        _, token = await g.services.create_token(workspace="acme", name="t", scopes=["items:write"])
        return g, token, up

    yield start
    for up in ups:
        await up.stop()


async def item(
    http: aiohttp.ClientSession, g: RunningGateway, token: str, method: str = "GET"
) -> tuple[int, bytes]:
    """``method`` /api/items/1 with ``token``: the status and the raw body."""
    # A bounded wait: a broken exchange must fail the test, not hang it.
    reply = await send(
        http,
        method,
        g.url + "/api/items/1",
        {"Authorization": f"Bearer {token}"},
        timeout=aiohttp.ClientTimeout(total=10),
    )
    return reply.status, reply.raw


async def test_sequential_requests_share_one_kept_alive_upstream_connection(
    serve: Callable[..., Awaitable[Started]],
) -> None:
    g, token, up = await serve(lambda conn, n, head: ok())
    async with aiohttp.ClientSession() as http:
        for _ in range(10):
            assert await item(http, g, token) == (200, OK)
    assert up.connections == 1
    first = up.heads[0].decode("latin-1")
    assert first.startswith("GET /api/items/1 HTTP/1.1\r\n")
    port = g.config.upstreams["api"].url.rsplit(":", 1)[1]
    assert f"\r\nHost: 127.0.0.1:{port}\r\n" in first
    assert "authorization" not in first.lower()  # the credential is still stripped


async def test_a_kept_alive_connection_closed_upstream_is_retried_only_when_idempotent(
    serve: Callable[..., Awaitable[Started]],
) -> None:
    # Every connection answers its first request, then closes on the second without answering:
    # what an upstream whose keep-alive timeout just expired looks like from the gateway.
    g, token, up = await serve(lambda conn, n, head: ok() if n == 1 else None)
    async with aiohttp.ClientSession() as http:
        assert await item(http, g, token) == (200, OK)  # connection 1
        assert await item(http, g, token) == (200, OK)  # 1 closes; retried on connection 2
        assert up.connections == 2
        status, body = await item(http, g, token, "POST")  # 2 closes; POST is not retried
        assert status == 502 and b"UPSTREAM_UNAVAILABLE" in body
        assert up.connections == 2
        assert await item(http, g, token, "DELETE") == (200, OK)  # a fresh connection 3


async def test_connection_close_from_the_upstream_is_honoured(
    serve: Callable[..., Awaitable[Started]],
) -> None:
    g, token, up = await serve(lambda conn, n, head: ok(b"Connection: close\r\n"))
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            assert await item(http, g, token) == (200, OK)
    assert up.connections == 3


async def test_a_response_not_read_to_its_end_closes_its_connection(
    serve: Callable[..., Awaitable[Started]],
) -> None:
    big = b"x" * (4 << 20)  # streamed (above the read-whole size), far more than socket buffers
    g, token, up = await serve(lambda conn, n, head: ok(body=big) if conn == 1 else ok())
    reader, writer = await asyncio.open_connection("127.0.0.1", g.proxy_port)
    writer.write(
        f"GET /api/items/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    writer.close()  # the client leaves mid-body
    # The gateway must close that upstream connection, never pool it with 4 MiB unread...
    await asyncio.wait_for(up.closed_by_peer.wait(), 10)
    async with aiohttp.ClientSession() as http:
        assert await item(http, g, token) == (200, OK)  # ...so the next answer is not leftovers
    assert up.connections == 2


async def test_interim_1xx_responses_are_skipped(
    serve: Callable[..., Awaitable[Started]],
) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    g, token, up = await serve(lambda conn, n, head: early + ok())
    async with aiohttp.ClientSession() as http:
        assert await item(http, g, token) == (200, OK)
        assert await item(http, g, token) == (200, OK)
    assert up.connections == 1


async def test_the_upstream_url_path_prefixes_every_request(
    serve: Callable[..., Awaitable[Started]],
) -> None:
    g, token, up = await serve(lambda conn, n, head: ok(), "/v1")
    async with aiohttp.ClientSession() as http:
        assert await item(http, g, token) == (200, OK)
    assert up.heads[0].startswith(b"GET /v1/api/items/1 HTTP/1.1\r\n")


async def test_a_garbled_upstream_answer_is_502_and_not_reused(
    serve: Callable[..., Awaitable[Started]],
) -> None:
    g, token, up = await serve(lambda conn, n, head: b"SMTP ready\r\n\r\n" if conn == 1 else ok())
    async with aiohttp.ClientSession() as http:
        status, body = await item(http, g, token)
        assert status == 502 and b"UPSTREAM_UNAVAILABLE" in body
        assert await item(http, g, token) == (200, OK)
    assert up.connections == 2


async def test_stray_bytes_after_a_response_never_prefix_the_next_one(
    serve: Callable[..., Awaitable[Started]],
) -> None:
    # An upstream that follows its first answer with the start of another message: those bytes
    # must not become the head of the answer to the next request on that connection.
    stray = b"HTTP/1.1 200 OK\r\nX-Smuggled: "
    second = b'{"n":2}'
    g, token, _ = await serve(lambda conn, n, head: ok() + stray if n == 1 else ok(body=second))
    async with aiohttp.ClientSession() as http:
        assert await item(http, g, token) == (200, OK)
        async with http.get(
            g.url + "/api/items/1", headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert (r.status, await r.read()) == (200, second)
            assert "X-Smuggled" not in r.headers


async def test_bytes_from_an_idle_upstream_connection_close_it(
    serve: Callable[..., Awaitable[Started]],
) -> None:
    g, token, up = await serve(lambda conn, n, head: ok() if conn == 1 else ok(body=b'{"n":2}'))
    async with aiohttp.ClientSession() as http:
        assert await item(http, g, token) == (200, OK)  # connection 1, now idle in the pool
        up.writers[0].write(b"HTTP/1.1 200 OK\r\nX-Smuggled: ")  # unasked-for bytes
        await asyncio.wait_for(up.closed_by_peer.wait(), 10)  # the gateway hangs up at once
        async with http.get(
            g.url + "/api/items/1", headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert (r.status, await r.read()) == (200, b'{"n":2}')
            assert "X-Smuggled" not in r.headers
    assert up.connections == 2


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
    ],
    ids=["http10", "http11-no-length"],
)
async def test_a_body_without_length_is_read_to_the_close(
    serve: Callable[..., Awaitable[Started]], head: bytes
) -> None:
    g, token, up = await serve(lambda conn, n, h: head + b"streamed until close")
    async with aiohttp.ClientSession() as http:
        assert await item(http, g, token) == (200, b"streamed until close")
        assert await item(http, g, token) == (200, b"streamed until close")
    assert up.connections == 2  # never pooled


async def test_a_base_url_with_credentials_keeps_them_on_bodiless_requests(
    serve: Callable[..., Awaitable[Started]],
) -> None:
    # userinfo in an upstream URL becomes Basic auth (ClientSession's way), for GET as for POST.
    g, token, up = await serve(lambda conn, n, h: ok(), userinfo="svc:s3cret@")
    async with aiohttp.ClientSession() as http:
        assert await item(http, g, token) == (200, OK)
        assert await item(http, g, token, "POST") == (200, OK)
    basic = "Authorization: Basic " + base64.b64encode(b"svc:s3cret").decode()
    assert all(basic in head.decode("latin-1") for head in up.heads), up.heads


async def test_pools_of_upstreams_a_reload_dropped_are_closed() -> None:
    up = ScriptedUpstream(lambda conn, n, h: ok())
    url = await up.start()
    pools = UpstreamPools()
    try:
        pool = pools.get(url)
        assert pool is not None
        proto, message, payload = await pool.send(
            "GET", "/x", CIMultiDict(), connect_timeout=2, read_timeout=2, head_timeout=2
        )
        assert message.code == 200 and await payload.read() == OK
        pool.release(proto)  # idle in the pool now
        pools.retain({url})
        assert not up.closed_by_peer.is_set()
        pools.retain(set())  # the reloaded config names other upstreams only
        await asyncio.wait_for(up.closed_by_peer.wait(), 5)
    finally:
        pools.close()
        await up.stop()


async def test_a_reload_closes_idle_connections_to_an_upstream_it_dropped(
    serve: Callable[..., Awaitable[Started]],
) -> None:
    g, token, old = await serve(lambda conn, n, h: ok())
    new = ScriptedUpstream(lambda conn, n, h: ok(body=b'{"new":1}'))
    new_url = await new.start()
    try:
        async with aiohttp.ClientSession() as http:
            assert await item(http, g, token) == (200, OK)  # a connection to `old`, now idle
            old_url = g.config.upstreams["api"].url
            assert old_url is not None
            g.config_path.write_text(g.config_path.read_text().replace(old_url, new_url))
            g.gw.apply_config(config_mod.load(g.config_path))  # what a reload does
            await asyncio.wait_for(old.closed_by_peer.wait(), 5)
            assert await item(http, g, token) == (200, b'{"new":1}')
    finally:
        await new.stop()


async def test_the_sweep_closes_connections_idle_past_keepalive() -> None:
    up = ScriptedUpstream(lambda conn, n, h: ok())
    url = await up.start()
    pool = UpstreamPool(url, keepalive=30.0)
    try:
        proto, _, payload = await pool.send(
            "GET", "/x", CIMultiDict(), connect_timeout=2, read_timeout=2, head_timeout=2
        )
        await payload.read()
        pool.release(proto)
        now = asyncio.get_running_loop().time()
        pool.sweep(now + 1)  # idle for 1 s: kept
        assert proto.is_connected()
        pool.sweep(now + 31)  # idle past keepalive: closed
        await asyncio.wait_for(up.closed_by_peer.wait(), 5)
    finally:
        pool.close()
        await up.stop()


async def test_idle_connections_are_capped_at_max_idle() -> None:
    """A burst opens many connections; once it is over, at most ``max_idle`` stay open."""
    up = ScriptedUpstream(lambda conn, n, h: ok())
    url = await up.start()
    pool = UpstreamPool(url, keepalive=30.0, max_idle=2)
    try:
        # Four requests in flight at once: four connections, none idle to reuse.
        sent = [
            await pool.send(
                "GET", "/x", CIMultiDict(), connect_timeout=2, read_timeout=2, head_timeout=2
            )
            for _ in range(4)
        ]
        for proto, _, payload in sent:
            await payload.read()
            pool.release(proto)
        open_ = [proto for proto, _, _ in sent if proto.is_connected()]
        assert len(open_) == 2
        # the two kept are the most recently released (the warmest)
        assert open_ == [sent[2][0], sent[3][0]]
    finally:
        pool.close()
        await up.stop()

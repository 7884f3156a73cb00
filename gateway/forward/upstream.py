"""Pooled keep-alive HTTP/1.1 exchanges with plain-``http`` upstreams, below ``ClientSession``.

``ClientSession.request`` costs ~80 µs of CPU per proxied request on this gateway's hot path:
request and response objects, the connector, trace hooks, URL and cookie handling, and redirect
and body machinery the gateway switches off anyway. For requests without a body this module
drives aiohttp's own client protocol (``ResponseHandler`` with the C response parser, the same
objects ``ClientSession`` uses underneath) directly over a small pool of keep-alive connections:
a minimal proxy measured ~67 µs per request this way against ~146 µs through ``ClientSession``
(docs/performance.md). ``https`` upstreams use it too, over the upstream's verified client
context (issue 22). Requests with a body and WebSocket upstreams keep using ``ClientSession``;
the forwarder decides.

What it keeps from ``ClientSession``: ``TCP_NODELAY``, ``sock_read`` (``read_timeout``, restarted
by every byte), a connect timeout, 1xx responses skipped, one retry of an idempotent request
when a reused connection turns out closed before any response byte (RFC 9110 §9.2.2), and
connections returned to the pool only once their response was read to the end.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from aiohttp import (
    ClientConnectorCertificateError,
    ClientConnectorError,
    ClientConnectorSSLError,
    ClientOSError,
    ServerDisconnectedError,
    ServerTimeoutError,
)
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.http_parser import RawResponseMessage
from aiohttp.http_writer import _serialize_headers
from aiohttp.streams import StreamReader
from multidict import CIMultiDict
from yarl import URL

__all__ = ["UpstreamPool", "UpstreamPools"]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Methods aiohttp sends ``Content-Length: 0`` for when they carry no body; kept so an upstream
# sees the same request it saw through ClientSession.
ZERO_LENGTH = frozenset({"POST", "PUT", "PATCH"})


class Connection(ResponseHandler):
    """aiohttp's client protocol, closed at once if the upstream sends bytes while it is idle.

    Bytes nobody asked for mean the upstream is out of step with the requests (a body longer than
    it announced, a second answer); kept, they would be read as the head of the next request's
    response. Stray bytes that come in the same read as a response are dropped with that
    response's parser, since every request gets a fresh one (see :meth:`UpstreamPool.send`).
    """

    idle = False

    def data_received(self, data: bytes) -> None:
        if self.idle and data:
            self.close()
            return
        super().data_received(data)


class UpstreamPool:
    """Idle keep-alive connections to one ``http(s)://host:port`` and the exchange over them."""

    def __init__(
        self,
        base: str,
        keepalive: float = 30.0,
        max_idle: int = 256,
        ssl_context: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        url = URL(base)
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise ValueError(f"not an http(s) URL: {base!r}")
        if (url.scheme == "https") != (ssl_context is not None):
            raise ValueError(f"an https URL needs a TLS context (and only it): {base!r}")
        if url.user is not None or url.query_string or url.fragment:
            # ClientSession turns userinfo into Basic auth and keeps a query; leave those to it.
            raise ValueError(f"a base URL with credentials, query or fragment: {url.host!r}")
        self.base = base
        self.host = url.raw_host
        self.port = url.port or (443 if ssl_context else 80)
        self.ssl_context = ssl_context
        self.server_name = server_name or (url.host if ssl_context else None)
        self.host_header = url.host_port_subcomponent or self.host
        # The base URL's own path (e.g. ``/v1``) prefixes every request target, as the string
        # concatenation of base + path does on the ClientSession path.
        self.prefix = url.raw_path.rstrip("/") if url.raw_path != "/" else ""
        self.keepalive = keepalive
        self.max_idle = max_idle
        self._idle: deque[tuple[Connection, float]] = deque()
        self._closed = False
        self._key = ConnectionKey(
            self.host, self.port, ssl_context is not None, ssl_context or True, None, None, None
        )
        # The loop the pool's connections live on, taken at first use. On Python 3.11
        # asyncio.get_running_loop() makes a getpid() system call each time; per request that
        # showed in the profile, so the pool asks once.
        self._loop: asyncio.AbstractEventLoop | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    # -- connections -------------------------------------------------------------------------------

    def _acquire(self, now: float) -> Connection | None:
        idle = self._idle
        while idle:
            proto, since = idle.pop()  # most recently used first: warmest, least likely closed
            if proto.is_connected() and not proto.should_close and now - since < self.keepalive:
                proto.idle = False
                return proto
            proto.close()
        return None

    async def _connect(self, limit: float) -> Connection:
        loop = self._running_loop()
        try:
            async with asyncio.timeout(limit):
                _, proto = await loop.create_connection(
                    lambda: Connection(loop),
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=self.server_name,
                )
        except ssl.SSLCertVerificationError as exc:
            raise ClientConnectorCertificateError(self._key, exc) from exc
        except ssl.SSLError as exc:
            raise ClientConnectorSSLError(self._key, exc) from exc
        except OSError as exc:
            raise ClientConnectorError(self._key, exc) from exc
        return proto

    def release(self, proto: Connection) -> None:
        """Back to the pool if its response was read to the end and it may be reused; else close."""
        if self._closed or proto.should_close or not proto.is_connected():
            proto.close()
            return
        loop_time = self._running_loop().time()
        # Drop connections idle past keepalive, and the coldest beyond max_idle, so a burst's
        # extra connections do not stay open forever.
        self.sweep(loop_time)
        idle = self._idle
        while len(idle) >= self.max_idle:
            idle.popleft()[0].close()
        proto.idle = True
        idle.append((proto, loop_time))

    def sweep(self, now: float) -> None:
        """Close connections idle past ``keepalive`` (the pool otherwise prunes only when used)."""
        idle = self._idle
        while idle and now - idle[0][1] >= self.keepalive:
            idle.popleft()[0].close()

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop()[0].close()

    # -- the exchange ------------------------------------------------------------------------------

    async def send(
        self,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        *,
        connect_timeout: float,
        read_timeout: float,
        head_timeout: float,
        max_line_size: int = 8190,
        max_field_size: int = 8190,
    ) -> tuple[Connection, RawResponseMessage, StreamReader]:
        """Send a bodiless request; return the connection, the response head and its body stream.

        ``headers`` gains Host. ``head_timeout`` bounds connecting, sending and the whole response
        head, since ``read_timeout`` alone restarts with every byte an upstream trickles. The
        caller reads the body (or not) and then calls :meth:`release` with the connection.
        Raises aiohttp's client errors: ``ClientConnectorError`` (connect failed),
        ``ServerDisconnectedError`` / ``ClientOSError`` (connection lost), ``ServerTimeoutError``
        (a timeout passed), ``HttpProcessingError`` (unparseable head).
        """
        headers["Host"] = self.host_header
        if method in ZERO_LENGTH:
            headers["Content-Length"] = "0"
        # The C serializer refuses CR/LF in any name or value, as ClientSession's writer does.
        head = _serialize_headers(f"{method} {self.prefix}{target} HTTP/1.1", headers)
        loop = self._running_loop()
        deadline = loop.time() + head_timeout
        retry = method in IDEMPOTENT
        while True:
            proto = self._acquire(loop.time())
            reused = proto is not None
            if proto is None:
                proto = await self._connect(min(connect_timeout, deadline - loop.time()))
            # A fresh response parser per request, as ClientSession does: whatever the previous
            # parser held past the end of its response (an upstream out of step) is dropped with
            # it instead of becoming the start of this response.
            proto.set_response_params(
                skip_payload=method == "HEAD",
                # A body with neither length nor chunking runs to the close, as ClientSession
                # reads it by default (such a response is never pooled: should_close).
                read_until_eof=True,
                auto_decompress=False,
                read_timeout=read_timeout,
                max_line_size=max_line_size,
                max_field_size=max_field_size,
            )
            transport = proto.transport
            assert transport is not None
            transport.write(head)
            proto.start_timeout()
            # One plain timer (not asyncio.timeout, which costs ~5 µs more per request): on
            # expiry the connection's reader fails with ServerTimeoutError and it is closed.
            expiry = loop.call_at(deadline, _head_timed_out, proto)
            try:
                message, payload = await proto.read()
                while 100 <= message.code < 200 and message.code != 101:
                    message, payload = await proto.read()  # interim (1xx) responses: skip
            except (ServerDisconnectedError, ClientOSError):
                proto.close()
                if reused and retry:
                    # A kept-alive connection the upstream closed meanwhile: once, on a fresh one.
                    retry = False
                    continue
                raise
            except BaseException:
                proto.close()
                raise
            finally:
                expiry.cancel()
            return proto, message, payload


def _head_timed_out(proto: ResponseHandler) -> None:
    proto.set_exception(ServerTimeoutError("Timeout waiting for the upstream's response head"))


class UpstreamPools:
    """One :class:`UpstreamPool` per base URL, created on first use; outlives reloads."""

    def __init__(self) -> None:
        self._pools: dict[str, UpstreamPool | None] = {}

    def get(
        self, base: str, ssl_context: ssl.SSLContext | None = None, server_name: str | None = None
    ) -> UpstreamPool | None:
        """The pool for ``base``, or ``None`` when the pool cannot serve it (ClientSession does).

        An ``https`` pool is bound to the TLS context it was made with: a reload that builds a new
        one (another CA, client certificate or SNI name) replaces the pool and its connections.
        """
        try:
            pool = self._pools[base]
            if pool is None or pool.ssl_context is ssl_context:
                return pool
            pool.close()
        except KeyError:
            pass
        try:
            pool = UpstreamPool(base, ssl_context=ssl_context, server_name=server_name)
        except ValueError:
            pool = None
        self._pools[base] = pool
        return pool

    def retain(self, bases: set[str]) -> None:
        """Close the pools of base URLs a reloaded config no longer names."""
        for base in [b for b in self._pools if b not in bases]:
            pool = self._pools.pop(base)
            if pool is not None:
                pool.close()

    async def sweep_forever(self, interval: float = 10.0) -> None:
        """Close idle connections past their keep-alive in every pool, every ``interval`` s."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for pool in self._pools.values():
                if pool is not None:
                    pool.sweep(now)

    def close(self) -> None:
        for pool in self._pools.values():
            if pool is not None:
                pool.close()
        self._pools.clear()

"""Listening sockets for the proxy: SO_REUSEPORT binding, a per-worker connection cap, and JSON
answers to requests the HTTP parser refuses.

aiohttp has no connection limit of its own, so the site wraps the server's protocol factory: past
``max_connections`` open connections a new one gets a complete ``503`` JSON answer and is closed,
instead of queuing without bound or being reset without a word. Counting uses the server's own
list of live connections, so there is no second bookkeeping to drift.

Requests the parser rejects (malformed framing, control characters, oversized lines, too many
headers, smuggling attempts) never reach a handler or middleware; aiohttp answers them itself in
plain text and logs the exception, whose message quotes up to 100 raw bytes of the offending line
— a token, if the line was ``Authorization``. :class:`GatewayRequestHandler` answers those with the
gateway's JSON error instead and logs only the error class, never the bytes. Its parser is wrapped
in :class:`StrictParser`, which refuses what both of aiohttp's parsers accept but an HTTP/1.1 edge
must not pass on (HTTP/0.9 and bare-LF request lines, versions other than 1.0 and 1.1, transfer
codings other than ``chunked``), and every answer says ``Server: gateway``, without versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import Any, cast

from aiohttp import http_exceptions, web
from aiohttp.http import HttpVersion10, HttpVersion11
from aiohttp.web_protocol import RequestHandler

from gateway.edge.responses import raw_refusal
from gateway.edge.tls import Sniffer

__all__ = [
    "SERVER",
    "CappedSite",
    "EdgeRefusal",
    "GatewayRequestHandler",
    "ListenError",
    "StrictParser",
    "bind",
    "opening",
]

# What the gateway calls itself in `Server`: no product versions for a scanner to match.
SERVER = "gateway"

log = logging.getLogger("gateway.listen")

REFUSAL = raw_refusal(
    "503 Service Unavailable",
    "TOO_MANY_CONNECTIONS",
    "This gateway worker has too many open connections; retry shortly.",
    b"Retry-After: 1\r\n",
)
# How long a refused connection may take to read the answer before it is closed anyway.
REFUSAL_LINGER = 2.0


class ListenError(Exception):
    """A listener could not open its port: said in one line to the operator, never a traceback."""

    def __init__(self, name: str, host: str, port: int, err: OSError) -> None:
        reason = (err.strerror or str(err)).lower()
        super().__init__(f"the {name} listener cannot listen on {host}:{port}: {reason}")
        self.name, self.host, self.port = name, host, port


@contextlib.contextmanager
def opening(name: str, host: str, port: int) -> Iterator[None]:
    """Turns the ``OSError`` of binding ``name``'s port (in use, not permitted, no such address)
    into a :class:`ListenError` naming the listener and the address."""
    try:
        yield
    except OSError as exc:
        raise ListenError(name, host, port, exc) from None


def bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket; with ``reuse_port`` every worker binds the same port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class _Refuse(asyncio.Protocol):
    """Answers 503 and closes; reads (and drops) what the client sends so close() sends no RST."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports (what `gateway serve` runs on) are not
        # asyncio.Transport subclasses, and an assertion here turned the 503 into a reset.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.write(REFUSAL)
        self.timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER, transport.close)
        if transport.can_write_eof():
            transport.write_eof()

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # the client is done: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()


SERVED_VERSIONS = frozenset({HttpVersion10, HttpVersion11})


class EdgeRefusal(http_exceptions.BadHttpMessage):
    """A request both aiohttp parsers accept but this edge does not (see :class:`StrictParser`)."""

    def __init__(self, status: int, code: str, text: str) -> None:
        super().__init__(text)
        self.status, self.error_code, self.text = status, code, text


class StrictParser:
    """aiohttp's request parser (C llhttp or pure Python), refusing what HTTP/1.1 proxies must not
    pass on although the parser accepts it:

    * HTTP/0.9 — a request line without a version. llhttp reads ``GET /x`` ended by CRLF *or a
      bare LF* as HTTP/0.9 and then parses the following lines as headers, which would reach the
      upstream; the Python parser already refuses both. → 400
    * any version but 1.0 and 1.1 (``HTTP/2.0`` in an HTTP/1 request line: llhttp and the Python
      parser accept it and aiohttp would answer ``HTTP/2.0 200``; the Python parser takes any
      ``HTTP/d.d``). → 505
    * a body framed by ``Transfer-Encoding`` other than the single coding ``chunked``: both
      parsers treat ``gzip, chunked`` as chunked and would forward a body whose coding the
      upstream is never told. → 501

    Wraps the parser the handler made instead of replacing aiohttp's parsing; on a refusal it raises
    :class:`EdgeRefusal` (which the handler answers like any parse error) and ignores the rest of
    the connection's bytes.
    """

    __slots__ = ("_parser", "_refused", "message_consumed")

    def __init__(self, parser: Any) -> None:
        self._parser = parser
        self._refused = False
        self.message_consumed = parser.message_consumed  # per request: bound once, not looked up

    def feed_data(self, data: bytes) -> tuple[Any, bool, bytes]:
        if self._refused:
            return (), False, b""
        messages, upgraded, tail = self._parser.feed_data(data)
        for message, _ in messages:
            version = message.version
            if version is not HttpVersion11 and version not in SERVED_VERSIONS:
                self._refused = True
                if version.major == 0:
                    raise EdgeRefusal(400, "BAD_REQUEST", "The request line has no HTTP version.")
                raise EdgeRefusal(
                    505, "HTTP_VERSION_NOT_SUPPORTED", "Only HTTP/1.0 and HTTP/1.1 are served here."
                )
            if message.chunked:
                coding = message.headers.get("Transfer-Encoding", "")
                if coding.strip().lower() != "chunked":
                    self._refused = True
                    raise EdgeRefusal(
                        501, "NOT_IMPLEMENTED", "Transfer-Encoding must be exactly chunked."
                    )
        return messages, upgraded, tail

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


def _parse_refusal(
    exc: BaseException | None, status: int, max_header_bytes: int
) -> tuple[int, str, str]:
    """(status, code, message) for a request the HTTP parser refused."""
    if isinstance(exc, EdgeRefusal):
        return exc.status, exc.error_code, exc.text
    if isinstance(exc, http_exceptions.LineTooLong):
        # The parser reports the limit it hit: the header-field limit, or the request-line one.
        if str(exc.args[1]) == str(max_header_bytes):
            return 431, "HEADERS_TOO_LARGE", "A request header is too large."
        return 414, "URI_TOO_LONG", "The request line is too long."
    if isinstance(exc, http_exceptions.BadHttpMessage) and "Too many headers" in str(exc):
        return 431, "HEADERS_TOO_LARGE", "The request has too many headers."
    if status >= 500:
        return 500, "INTERNAL", "Internal gateway error."
    return 400, "BAD_REQUEST", "The request is not valid HTTP/1.1."


class GatewayRequestHandler(RequestHandler):
    """aiohttp's protocol handler, answering parser refusals in JSON without logging their bytes."""

    __slots__ = ("max_header_bytes",)

    def __init__(self, *args: Any, max_header_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_header_bytes = max_header_bytes
        # Duck-typed: StrictParser forwards everything but feed_data to the parser it wraps.
        self._parser = StrictParser(self._parser)  # type: ignore[assignment]

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send an error")
        status, code, text = _parse_refusal(exc, status, self.max_header_bytes)
        # The class only: the exception's text may quote the raw header line (a credential).
        log.info(
            "refused unparseable request from %s: %s (%d)",
            request.remote,
            type(exc).__name__ if exc else "error",
            status,
        )
        resp = web.Response(
            status=status,
            body=json.dumps({"error": {"code": code, "message": text}}).encode(),
            content_type="application/json",
            headers={"Server": SERVER},
        )
        resp.force_close()
        return resp


class CappedSite(web.SockSite):
    """A :class:`aiohttp.web.SockSite` that refuses connections past ``max_connections``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: socket.socket,
        max_connections: int | None,
        max_header_bytes: int = 16384,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, sock, ssl_context=ssl_context)
        self.max_connections = max_connections
        self.max_header_bytes = max_header_bytes
        self.refused = 0

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers with the runner, as SockSite.start does
        server = self._runner.server
        assert server is not None
        cap = self.max_connections

        loop = asyncio.get_running_loop()
        # The handler_args the runner gave its server (header limits, keep-alive, access log):
        # aiohttp offers no public way to pick the protocol class, so build it the way
        # Server.__call__ does, with our subclass.
        kwargs = dict(server._kwargs)

        def factory() -> asyncio.Protocol:
            if cap is not None and len(server.connections) >= cap:
                self.refused += 1
                return _Refuse()
            return GatewayRequestHandler(
                server, loop=loop, max_header_bytes=self.max_header_bytes, **kwargs
            )

        serve: Any = factory
        if self._ssl_context is not None:
            # TLS after a look at the first byte, so plain HTTP gets an answer (gateway.edge.tls).
            context = self._ssl_context
            serve = lambda: Sniffer(factory, context)  # noqa: E731
        self._server = await loop.create_server(serve, sock=self._sock, backlog=self._backlog)

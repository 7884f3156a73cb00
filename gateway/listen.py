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
gateway's JSON error instead and logs only the error class, never the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestHandler

__all__ = ["CappedSite", "GatewayRequestHandler", "ListenError", "bind", "opening"]

log = logging.getLogger("gateway.listen")

_BODY = json.dumps(
    {
        "error": {
            "code": "TOO_MANY_CONNECTIONS",
            "message": "This gateway worker has too many open connections; retry shortly.",
        }
    }
).encode()
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
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
        assert isinstance(transport, asyncio.Transport)
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


def _parse_refusal(
    exc: BaseException | None, status: int, max_header_bytes: int
) -> tuple[int, str, str]:
    """(status, code, message) for a request the HTTP parser refused."""
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
    ) -> None:
        super().__init__(runner, sock)
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

        self._server = await loop.create_server(factory, sock=self._sock, backlog=self._backlog)

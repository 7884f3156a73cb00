"""Option 2's floor: aiohttp's C request parser on a bare uvloop protocol, no ``web`` layer.

Issue 7's target (0.30 times nginx-proxy's req/s) is above what aiohttp's server allows
(:mod:`bench.floor`), and well below what Python allows (:mod:`bench.rawrelay`). One way between
the two keeps aiohttp's parsers and the gateway's pooled upstream exchange but drops aiohttp's
server machinery (``RequestHandler``, ``BaseRequest``, ``StreamResponse``, the payload writer):
this contender measures what that way costs before any gateway logic, so the decision asked for
in issue 7 can be made with a number.

It relays exactly what :mod:`bench.floor` relays (every request header but the hop-by-hop ones
and ``Authorization``, the status and ``Content-Type`` back, the body read whole) for bodiless
requests only. A request with a body, an upgrade or a parse error gets 400 and a closed
connection. A measuring stick for ``--ceiling``, never a proxy: a real server layer would also
need bodies, timeouts, limits, pipelining back-pressure and the hardening aiohttp's handler has.

Run: ``python -m bench.parserrelay --port P --upstream http://127.0.0.1:U --workers 2``.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque

import uvloop
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_parser import HttpRequestParser, RawRequestMessage
from aiohttp.http_writer import _serialize_headers
from multidict import CIMultiDict

from bench.floor import exchange, relay_cli, until_sigterm
from gateway.forward.upstream import UpstreamPool

_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Conn(BaseProtocol):
    """One client connection: requests parsed by aiohttp's C parser, answered in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: UpstreamPool) -> None:
        super().__init__(loop)
        self.loop = loop
        self.pool = pool
        self.parser = HttpRequestParser(
            self, loop, 2**16, max_line_size=8190, max_field_size=8190, max_headers=100
        )
        self.queue: deque[RawRequestMessage] = deque()
        self.task: asyncio.Task[None] | None = None

    def data_received(self, data: bytes) -> None:
        try:
            messages, upgraded, _ = self.parser.feed_data(data)
        except Exception:  # any parse error: refuse and close, as a measuring stick may
            self._refuse()
            return
        for message, _payload in messages:
            if message.chunked or message.upgrade or upgraded or _has_body(message):
                self._refuse()
                return
            self.queue.append(message)
        if self.queue and self.task is None:
            self.task = self.loop.create_task(self._serve())

    def _refuse(self) -> None:
        if self.transport is not None:
            self.transport.write(_BAD)
            self.transport.close()

    async def _serve(self) -> None:
        try:
            while self.queue and self.transport is not None:
                msg = self.queue.popleft()
                message, body = await exchange(self.pool, msg.method, msg.path, msg.headers)
                out = CIMultiDict(
                    {
                        "Content-Type": message.headers.get("Content-Type", ""),
                        "Content-Length": str(len(body)),
                    }
                )
                head = _serialize_headers(f"HTTP/1.1 {message.code} {message.reason}", out)
                self.transport.write(head + body)
                if msg.should_close:
                    self.transport.close()
                    return
        finally:
            self.task = None

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.transport = None
        if self.task is not None:
            self.task.cancel()


def _has_body(message: RawRequestMessage) -> bool:
    length = message.headers.get("Content-Length")
    return length is not None and length != "0"


def _serve(sock: socket.socket, upstream: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        pool = UpstreamPool(upstream)
        await loop.create_server(lambda: _Conn(loop, pool), sock=sock)
        await until_sigterm(pool)

    uvloop.run(main())


if __name__ == "__main__":
    relay_cli("python -m bench.parserrelay", __doc__, _serve)

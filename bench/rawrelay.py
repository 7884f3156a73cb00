"""The Python ceiling: a keep-alive relay on bare uvloop protocols, with no HTTP library at all.

Where :mod:`bench.floor` measures the cheapest relay on aiohttp (the stack issue 7 asks to keep),
this one measures what Python itself allows on the same machine and topology: each client
connection gets its own upstream connection; a request head is forwarded byte for byte and the
response relayed by its Content-Length. It parses nothing else, checks nothing, and handles
neither bodies nor chunked responses: a measuring stick for ``--ceiling``, never a proxy.

Run: ``python -m bench.rawrelay --port P --upstream-port U --workers 2``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket

import uvloop

from bench.floor import run_workers


class _Upstream(asyncio.Protocol):
    """Upstream side: complete responses (head + Content-Length bytes) go back to the client."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client
        self.buf = b""
        self.need = -1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.buf:
            if self.need < 0:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buf[:end].lower()
                at = head.find(b"content-length:")
                length = 0
                if at >= 0:
                    eol = head.find(b"\r\n", at)
                    length = int(head[at + 15 : eol if eol >= 0 else len(head)])
                self.need = end + 4 + length
            if len(self.buf) < self.need:
                return
            self.client.write(self.buf[: self.need])
            self.buf, self.need = self.buf[self.need :], -1


class _Client(asyncio.Protocol):
    """Client side: each request head goes to this connection's own upstream connection."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.buf = b""
        self.up: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        # Kept: the loop holds tasks weakly, and connection_lost cancels one still connecting.
        self.connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        up, _ = await loop.create_connection(
            lambda: _Upstream(self.transport), "127.0.0.1", self.upstream_port
        )
        self.up = up
        for head in self.pending:
            up.write(head)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head, self.buf = self.buf[: end + 4], self.buf[end + 4 :]
            if self.up is None:
                self.pending.append(head)
            else:
                self.up.write(head)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connecting.cancel()  # a no-op once connected
        if self.up is not None:
            self.up.close()


def _serve(sock: socket.socket, upstream_port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Client(upstream_port), sock=sock)
        await server.serve_forever()

    uvloop.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    run_workers(_serve, args.port, args.workers, args.upstream_port)


if __name__ == "__main__":
    main()

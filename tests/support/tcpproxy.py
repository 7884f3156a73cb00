"""A TCP relay on a loopback port that a test can cut and restore, to break a real connection.

``stop()`` closes the listening socket *and* every relayed connection, as a network partition or a
database restart would; ``start()`` listens again on the same port, so clients configured with it
can reconnect by themselves.

``pause()`` is the other kind of failure, a network that swallows packets: connections stay open
and new ones are accepted, but nothing is forwarded either way (no FIN, no RST) until
``resume()``, which delivers what was held, as TCP retransmission would after a partition heals.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def pause(self) -> None:
        """Stop forwarding (blackhole): every byte is held, nothing is refused or closed."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()  # RST, not a polite FIN: like a dead peer
        self._writers.clear()
        self._flowing.set()  # held connections end now (their clients were cut above)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        await self._flowing.wait()  # paused: the client's handshake goes unanswered
        if writer.transport.is_closing():
            return  # cut by stop() while paused
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()
            self._writers.discard(dst)

"""Buffered access-log output for ``serve``: one write per batch of lines, not one per request.

The access log emits a line per request; a plain ``StreamHandler`` writes and flushes each one (a
system call per request on the hot path). :class:`BufferedLineHandler` keeps formatted lines in
memory and writes them with a single ``os.write`` when ``capacity`` lines are pending, when the
worker's flusher runs (every ``interval``, so a quiet gateway's lines appear within that time), and
at shutdown — like nginx's ``access_log … buffer= flush=``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

__all__ = ["BufferedLineHandler", "buffer_access_log", "flush_periodically"]


class BufferedLineHandler(logging.Handler):
    def __init__(self, fd: int, capacity: int = 256) -> None:
        super().__init__()
        self.fd = fd
        self.capacity = capacity
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
            if len(self.lines) >= self.capacity:
                self.flush()
        except Exception:  # logging must never break a request
            self.handleError(record)

    def flush(self) -> None:
        if not self.lines:
            return
        lines, self.lines = self.lines, []
        data = ("\n".join(lines) + "\n").encode("utf-8", "replace")
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            pass  # stderr gone (closed pipe): drop the lines rather than fail requests

    def close(self) -> None:
        self.flush()
        super().close()


def buffer_access_log(name: str = "gateway.access") -> BufferedLineHandler:
    """Route ``name``'s records to a buffered stderr handler instead of the root handlers."""
    handler = BufferedLineHandler(sys.stderr.fileno())
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
    return handler


async def flush_periodically(handler: BufferedLineHandler, interval: float = 0.5) -> None:
    """Run until cancelled: flush ``handler`` every ``interval`` seconds."""
    try:
        while True:
            await asyncio.sleep(interval)
            handler.flush()
    finally:
        handler.flush()

"""Buffered access-log output for ``serve``: one write per batch of lines, not one per request.

The access log emits a line per request; a plain ``StreamHandler`` writes and flushes each one (a
system call per request on the hot path). :class:`BufferedLineHandler` keeps formatted lines in
memory and writes them with a single ``os.write`` when ``capacity`` lines are pending, when the
worker's flusher runs (every ``interval``, so a quiet gateway's lines appear within that time), and
at shutdown — like nginx's ``access_log … buffer= flush=``.

:func:`direct_sink` lets the access log hand a finished line straight to that buffer when nothing
else could see the record (no other handler, filter or formatter), skipping the LogRecord, lock and
formatting that ``Logger.info`` costs on every request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

__all__ = ["BufferedLineHandler", "buffer_access_log", "direct_sink", "flush_periodically"]

# The one formatter buffer_access_log installs: lines formatted with it are the message itself.
_PLAIN = logging.Formatter("%(message)s")


class BufferedLineHandler(logging.Handler):
    def __init__(self, fd: int, capacity: int = 256) -> None:
        super().__init__()
        self.fd = fd
        self.capacity = capacity
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write(self.format(record))
        except Exception:  # logging must never break a request
            self.handleError(record)

    def write(self, line: str) -> None:
        """Buffer one formatted line (what :meth:`emit` does after formatting)."""
        self.lines.append(line)
        if len(self.lines) >= self.capacity:
            self.flush()

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
    handler.setFormatter(_PLAIN)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
    return handler


def direct_sink(logger: logging.Logger) -> BufferedLineHandler | None:
    """The buffer that is ``logger``'s only destination, exactly as :func:`buffer_access_log` set
    it up; ``None`` when anything else (a handler, filter, formatter, propagation) is involved.

    Checked per call, so logging reconfigured at run time (tests' capture handlers) is honoured.
    The caller still checks ``logger.isEnabledFor`` for levels and ``logging.disable``.
    """
    handlers = logger.handlers
    if len(handlers) != 1 or logger.propagate or logger.filters:
        return None
    handler = handlers[0]
    if (
        type(handler) is not BufferedLineHandler
        or handler.formatter is not _PLAIN
        or handler.filters
        or handler.level > logging.INFO
    ):
        return None
    return handler


async def flush_periodically(handler: BufferedLineHandler, interval: float = 0.5) -> None:
    """Run until cancelled: flush ``handler`` every ``interval`` seconds."""
    try:
        while True:
            await asyncio.sleep(interval)
            handler.flush()
    finally:
        handler.flush()

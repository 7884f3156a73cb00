"""Config reload without restart: on SIGHUP and when the config file changes.

A reload builds a new :class:`~gateway.app.Runtime` and swaps one reference, so requests in
flight finish on the config they started with and no connection is touched. A file that does not
load is refused with every problem logged (key path and value) and the old config keeps serving.
Settings bound to sockets or open resources (listeners, store, pepper, cache sizes, limits) only
change on restart; a reload that changes them is refused and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING

from gateway import config as config_mod
from gateway.telemetry import config_reloaded

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["RESTART_ONLY", "Reloader"]

log = logging.getLogger("gateway.reload")
RESTART_ONLY = (
    "proxy",
    "admin",
    "metrics",
    "store",
    "store_options",
    "pepper",
    "cache",
    "limits",
    "tracing",  # the tracer provider and its exporter thread are built once (gateway/tracing.py)
)


class Reloader:
    def __init__(self, gw: Gateway, path: str, interval: float = 1.0) -> None:
        self.gw = gw
        self.path = path
        self.interval = interval
        self._stamp = self._read_stamp()
        self._task: asyncio.Task[None] | None = None

    def _read_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self, why: str) -> bool:
        """Load the file and swap it in; ``False`` (old config kept) when it is refused."""
        self._stamp = self._read_stamp()
        try:
            new = config_mod.load(self.path)
        except config_mod.ConfigError as exc:
            lines = "; ".join(p.render(exc.source) for p in exc.problems if not p.warning)
            log.error("config reload (%s) refused, old config keeps serving: %s", why, lines)
            config_reloaded(False)
            return False
        old = self.gw.config
        changed = [k for k in RESTART_ONLY if getattr(old, k) != getattr(new, k)]
        if changed:
            log.error(
                "config reload (%s) refused, old config keeps serving: %s change only on restart",
                why,
                ", ".join(changed),
            )
            config_reloaded(False)
            return False
        self.gw.apply_config(new)
        config_reloaded(True)
        log.warning("config reloaded (%s): %d routes", why, len(new.routes))
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            stamp = self._read_stamp()
            if stamp is not None and stamp != self._stamp:
                self.reload("file changed")

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="config-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

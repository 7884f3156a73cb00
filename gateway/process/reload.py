"""Config reload without restart: on SIGHUP and when the config file changes.

Listener certificates (:class:`gateway.edge.tls.ServerCerts`) reload on SIGHUP too, and whenever one of
their files changes on disk; new connections get the new certificate, open ones keep theirs.

A reload builds a new :class:`~gateway.app.Runtime` and swaps one reference, so requests in
flight finish on the config they started with and no connection is touched. A file that does not
load is refused with every problem logged (key path and value) and the old config keeps serving.
Settings bound to sockets or open resources (listeners, store, pepper, cache sizes, limits) only
change on restart; a reload that changes them is refused and says so.

The file watcher loads a changed file only once it has been stable across two checks (same size,
mtime and inode one ``interval`` apart): an editor or a copy writing the file in place is not
caught half-way, which would serve a config with only its first routes. A writer that pauses
longer than the interval can still be caught, so the safe way to deploy a config is to write a
new file beside it and rename it over the old one (atomic on POSIX).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING

from gateway import config as config_mod
from gateway.edge.tls import ServerCerts, TLSFileError, reload_all
from gateway.features.telemetry import config_reloaded

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
    "external_auth",  # its listener and path are bound when the worker starts
    "tracing",  # the tracer provider and its exporter thread are built once (gateway/features/tracing.py)
)


class Reloader:
    def __init__(
        self,
        gw: Gateway,
        path: str,
        interval: float = 1.0,
        certs: list[ServerCerts] | None = None,
    ) -> None:
        self.gw = gw
        self.certs = certs or []
        self.path = path
        self.interval = interval
        self._stamp = self._read_stamp()
        # A changed stamp seen once, waiting to be seen again unchanged before it is loaded.
        self._pending: tuple[int, int, int] | None = None
        self._task: asyncio.Task[None] | None = None

    def _read_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self, why: str) -> bool:
        """Load the file and swap it in; ``False`` (old config kept) when it is refused."""
        if why == "SIGHUP":
            reload_all(self.certs, why)
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
        try:
            self.gw.apply_config(new)
        except TLSFileError as exc:  # an upstream CA or client certificate that does not load
            log.error("config reload (%s) refused, old config keeps serving: %s", why, exc)
            config_reloaded(False)
            return False
        config_reloaded(True)
        log.warning("config reloaded (%s): %d routes", why, len(new.routes))
        return True

    def check(self) -> bool:
        """One look at the file: reload it if it changed and has stayed as it was since the last
        look; ``True`` when a new config was applied."""
        stamp = self._read_stamp()
        if stamp is None or stamp == self._stamp:
            self._pending = None
            return False
        if stamp != self._pending:
            self._pending = stamp  # still being written, perhaps: look again next time
            return False
        self._pending = None
        return self.reload("file changed")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.check()
            reload_all(self.certs, "certificate file changed", only_changed=True)

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="config-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

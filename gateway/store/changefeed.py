"""The change feed reader: applies the store's changes to the auth caches (:mod:`gateway.store.cache`).

It reads on every wake-up (a store notification, :mod:`gateway.store.propagation`) and at least
every ``cache.poll_interval``; while the store cannot be read it keeps the outage's books
(:mod:`gateway.store.health`) and drops every cache once the grace has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.core.errors import StoreUnavailable
from gateway.store.base import Store
from gateway.store.cache import AuthCache
from gateway.store.health import StoreHealth, bounded

__all__ = ["ChangeFeed"]

# The caches' logger, as when the feed lived with them: operators filter on it.
log = logging.getLogger("gateway.cache")


class ChangeFeed:
    """Applies ``store.changes_since`` to the caches it feeds: on every wake-up, and periodically.

    The periodic resync (every ``interval`` ≤ 1 s) is the guarantee; :meth:`wake` (called by a
    store notification, e.g. PostgreSQL NOTIFY) only makes it sooner. A lost notification or a
    dropped listening connection therefore delays a revocation by at most one interval.

    Each read is bounded (``timeout``), so a store that hangs is noticed within one interval plus
    that bound. Every successful read is the "last contact" ``outage_grace`` counts from (kept by
    :class:`~gateway.store.health.StoreHealth`): during an outage cached decisions keep serving for
    ``outage_grace`` after it (changes made elsewhere in that window are invisible here); past
    that every cache is dropped and stays dropped until the store answers again, so unknown and
    formerly cached tokens alike fail closed with 503.
    """

    def __init__(
        self,
        store: Store,
        caches: list[AuthCache],
        interval: float,
        health: StoreHealth | None = None,
        timeout: float = 1.0,
    ) -> None:
        self.store = store
        self.caches = caches
        self.interval = interval
        self.health = health or StoreHealth()
        self.timeout = timeout
        self.seq = 0
        # whether a push channel (LISTEN) is live; None when the store has none
        self.listening: bool | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.seq = await self.store.latest_change()
        self.health.synced()
        self._task = asyncio.create_task(self._run(), name="change-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Resync now rather than at the next interval (a change was announced)."""
        self._wake.set()

    def set_listening(self, up: bool) -> None:
        self.listening = up

    @property
    def serving_stale(self) -> bool:
        """True while the store is unreachable and caches are still used within the grace."""
        return self.health.serving_stale

    async def poll_once(self) -> int:
        """Apply every change since the last poll; returns how many were applied."""
        applied = 0
        while True:
            try:
                changes = await bounded(lambda: self.store.changes_since(self.seq), self.timeout)
            except TimeoutError:
                raise StoreUnavailable(reason="store_timeout") from None
            if not changes:
                break
            for change in changes:
                for cache in self.caches:
                    cache.apply(change)
            self.seq = changes[-1].seq
            applied += len(changes)
        self.health.synced()
        return applied

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()
            try:
                await self.poll_once()
            except StoreUnavailable as exc:
                self._outage(exc)
            except Exception:  # pragma: no cover - logged, and the loop must survive
                log.exception("change feed poll failed")

    def _outage(self, exc: StoreUnavailable) -> None:
        self.health.failed(f"change feed read: {exc.reason}")
        if not self.health.cached_ok():
            # We cannot see changes, so nothing cached may outlive the grace.
            for cache in self.caches:
                cache.clear()

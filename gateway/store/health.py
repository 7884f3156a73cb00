"""Whether the store answers: the circuit breaker for store calls on the request path, and the
outage clock behind ``store.outage_grace``.

A store that refuses connections fails fast by itself; one that hangs (packets swallowed, no RST)
does not, and without a bound every cache miss would wait out TCP and query timeouts. So every
store call a request makes goes through :meth:`StoreHealth.call`: it is bounded by
``store.lookup_timeout``, and the first failure opens the circuit. While it is open, calls are
refused at once (503 ``STORE_UNAVAILABLE`` in microseconds), except one probe per
``store.probe_interval`` (half-open); a probe that succeeds wakes the change feed, whose successful
read closes the circuit.

The outage ends only with a successful change-feed read, because that is what proves the caches
have caught up on every change made meanwhile (a lookup answering says nothing about revocations
missed). ``last_sync`` (the last such read) is what ``outage_grace`` counts from: during an outage
cached decisions serve, even past their TTL, until ``last_sync + outage_grace``; then none does.
The outage is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway.core.errors import StoreUnavailable

__all__ = ["StoreHealth", "bounded"]

log = logging.getLogger("gateway.store")
T = TypeVar("T")


class StoreHealth:
    """The circuit and the outage clock, shared by one process's caches and change feed."""

    def __init__(
        self,
        lookup_timeout: float = 0.5,
        probe_interval: float = 1.0,
        outage_grace: float = 0.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookup_timeout = lookup_timeout
        self.probe_interval = probe_interval
        self.outage_grace = outage_grace
        self.timer = timer
        # timer() when the current outage began; None while the store answers.
        self.down_since: float | None = None
        self.last_sync = timer()
        self._next_probe = 0.0
        # Called when a probe succeeds during an outage (the gateway wakes its change feed).
        self.on_probe_ok: Callable[[], None] = lambda: None

    def cached_ok(self) -> bool:
        """May cached decisions be used now? Always while up; during an outage, within the grace."""
        return self.down_since is None or self.timer() - self.last_sync <= self.outage_grace

    @property
    def serving_stale(self) -> bool:
        """True during an outage while cached decisions still serve."""
        return self.down_since is not None and self.cached_ok()

    def failed(self, why: str) -> None:
        """A store call failed: open the circuit (log once, when the outage starts)."""
        now = self.timer()
        self._next_probe = now + self.probe_interval
        if self.down_since is None:
            self.down_since = now
            log.warning(
                "store unreachable (%s): cache misses get 503 at once, probing every %.1fs; "
                "cached decisions serve for up to %.1fs after the last change-feed read",
                why,
                self.probe_interval,
                self.outage_grace,
            )

    def synced(self) -> None:
        """The change feed read the store: caches are current, the outage (if any) is over."""
        now = self.timer()
        self.last_sync = now
        if self.down_since is not None:
            log.warning("store reachable again after %.1fs; caches resynced", now - self.down_since)
            self.down_since = None

    def admit(self) -> bool:
        """Whether a call may go to the store now: always while up, one probe per interval if not."""
        if self.down_since is None:
            return True
        now = self.timer()
        if now < self._next_probe:
            return False
        self._next_probe = now + self.probe_interval
        return True

    async def call(
        self,
        op: Callable[[], Awaitable[T]],
        what: str,
        limit: float | None = None,
        *,
        gated: bool = True,
    ) -> T:
        """``await op()`` bounded by the lookup timeout; ``StoreUnavailable`` when the store does
        not answer in time, fails, or the circuit is open. ``gated=False`` (the readiness check,
        itself a probe) asks the store even while the circuit is open."""
        if gated and not self.admit():
            raise StoreUnavailable(reason="store_down")
        probing = self.down_since is not None
        limit = self.lookup_timeout if limit is None else limit
        try:
            result = await bounded(op, limit)
        except TimeoutError:
            self.failed(f"{what} got no answer within {limit:g}s")
            raise StoreUnavailable(reason="store_timeout") from None
        except StoreUnavailable as exc:
            cause = f", {type(exc.__cause__).__name__}" if exc.__cause__ is not None else ""
            self.failed(f"{what} failed: {exc.reason}{cause}")
            raise
        if probing:
            self.on_probe_ok()
        return result


async def bounded(op: Callable[[], Awaitable[T]], limit: float) -> T:
    """``await op()``, or ``TimeoutError`` after ``limit`` seconds.

    Unlike ``asyncio.timeout`` this returns at the limit: the call runs as its own task and is
    abandoned (cancelled, not awaited) then, because a driver's cancellation cleanup on a hung
    connection (asyncpg resetting it) can itself wait on the network for the query timeout.
    """
    task = asyncio.ensure_future(op())
    try:
        await asyncio.wait((task,), timeout=limit)
    except asyncio.CancelledError:
        _abandon(task)
        raise
    if not task.done():
        _abandon(task)
        raise TimeoutError
    return task.result()


def _abandon(task: asyncio.Future[Any]) -> None:
    task.cancel()
    task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so an abandoned failure is not reported as never retrieved

"""Token usage: ``last_used_at`` collected in memory on the request path and written in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.core.errors import StoreUnavailable
from gateway.store.base import Store

__all__ = ["UsageRecorder"]

# The caches' logger, as when the recorder lived with them: operators filter on it.
log = logging.getLogger("gateway.cache")


class UsageRecorder:
    """Collects ``last_used_at`` in memory and writes it in one batch every interval."""

    def __init__(self, store: Store, interval: float) -> None:
        self.store = store
        self.interval = interval
        self.pending: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def touch(self, token_id: str, now: float) -> None:
        self.pending[token_id] = now

    async def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, {}
        try:
            await self.store.record_usage(batch)
        except StoreUnavailable:
            # Keep what we could not write; newer touches win over older ones.
            for tid, at in batch.items():
                self.pending[tid] = max(at, self.pending.get(tid, 0.0))
            raise

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(StoreUnavailable):
            await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except StoreUnavailable:
                log.warning("could not write last_used_at; will retry")

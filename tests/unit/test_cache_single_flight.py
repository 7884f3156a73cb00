"""Concurrent cache misses of one key share one store lookup (gateway/store/cache.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.config import CacheConfig
from gateway.store.base import Workspace
from gateway.store.cache import AuthCache
from gateway.store.sqlite import SQLiteStore


class Counting:
    """A real SQLite store that counts the workspace lookups it is asked for."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.calls = 0

    async def get_workspace(self, key: str, by: str = "any") -> Workspace | None:
        self.calls += 1
        return await self.store.get_workspace(key, by)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_a_burst_of_misses_asks_the_store_once(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/sf.db")
    await store.open()
    try:
        await store.create_workspace(
            Workspace(id="ws_1", slug="acme", name="Acme", plan="free", created_at=0.0)
        )
        counting = Counting(store)
        cache = AuthCache(counting, CacheConfig())
        got = await asyncio.gather(*(cache.get_workspace("acme", "slug") for _ in range(50)))
        assert counting.calls == 1  # 50 requests missed together; the store saw one lookup
        assert len({id(w) for w in got}) == 1
        # and the answer is cached: nothing more reaches the store
        await cache.get_workspace("acme", "slug")
        assert counting.calls == 1
    finally:
        await store.close()


async def test_a_caller_that_goes_away_does_not_cancel_the_lookup_for_the_others(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/sf2.db")
    await store.open()
    try:
        counting = Counting(store)
        cache = AuthCache(counting, CacheConfig())
        first = asyncio.ensure_future(cache.get_workspace("nope", "slug"))
        await asyncio.sleep(0)  # the first caller has started the lookup
        second = asyncio.ensure_future(cache.get_workspace("nope", "slug"))
        first.cancel()
        assert await second is None  # still answered (an unknown workspace), not cancelled
        assert counting.calls == 1
    finally:
        await store.close()

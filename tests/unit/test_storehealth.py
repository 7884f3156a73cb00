"""Store outages as the request path sees them (gateway/store/health.py, gateway/store/cache.py), on a
fake clock: the circuit breaker, and cached decisions served past their TTL for the whole
``outage_grace`` (stale-while-unavailable) but not a moment longer, and never outside an outage.

The store is the real SQLite store; "down" is a wrapper whose lookups raise or hang, as a store
that refuses or swallows packets would.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.config import CacheConfig
from gateway.core.errors import StoreUnavailable
from gateway.store.cache import AuthCache
from gateway.store.health import StoreHealth
from tests.unit.test_ttlmap import Clock, _store_with_token


class Switchable:
    """The real store, until the test makes its lookups fail or hang."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.mode = "up"
        self.asked = 0

    async def _lookup(self, name: str, *args: Any) -> Any:
        self.asked += 1
        if self.mode == "refuse":
            raise StoreUnavailable(reason="store_read")
        if self.mode == "hang":
            await asyncio.Event().wait()
        return await getattr(self.store, name)(*args)

    async def find_token(self, token_hash: str) -> Any:
        return await self._lookup("find_token", token_hash)

    async def get_workspace(self, key: str, by: str = "any") -> Any:
        return await self._lookup("get_workspace", key, by)


@pytest.fixture
async def parts(tmp_path: Path) -> Any:
    store = await _store_with_token(tmp_path)
    clock = Clock()
    health = StoreHealth(lookup_timeout=0.2, probe_interval=1.0, outage_grace=30, timer=clock)
    switch = Switchable(store)
    cache = AuthCache(switch, CacheConfig(ttl=60), timer=clock, health=health)  # type: ignore[arg-type]
    yield cache, health, switch, clock
    await store.close()


async def test_outside_an_outage_an_expired_entry_is_not_served(parts: Any) -> None:
    cache, _, switch, clock = parts
    assert await cache.find_token("h1") is not None
    clock.now += 61
    assert cache.cached_token("h1") is None
    assert await cache.get_workspace("acme", "slug") is not None
    clock.now += 61
    before = switch.asked
    assert await cache.get_workspace("acme", "slug") is not None
    assert switch.asked == before + 1  # asked the store again: nothing stale while it answers


async def test_the_lookup_that_finds_the_store_down_answers_from_its_stale_entry(
    parts: Any,
) -> None:
    cache, health, switch, clock = parts
    assert await cache.find_token("h1") is not None
    assert await cache.get_workspace("acme", "slug") is not None
    clock.now += 70  # both entries are past their 60 s TTL
    health.synced()
    switch.mode = "refuse"
    assert await cache.get_workspace("acme", "slug") is not None  # failed, then served stale
    assert health.down_since is not None
    assert cache.cached_token("h1") is not None


async def test_the_grace_counts_from_the_last_feed_read(parts: Any) -> None:
    cache, health, switch, clock = parts
    assert await cache.find_token("h1") is not None
    assert await cache.get_workspace("acme", "slug") is not None
    clock.now += 100  # long past the 60 s TTL
    health.synced()  # the feed read the store just now; then it goes down
    switch.mode = "refuse"
    health.failed("change feed read failed")
    with pytest.raises(StoreUnavailable):
        await cache.find_token("h-unknown")  # nothing cached: fails closed
    clock.now += 29.9
    assert cache.cached_token("h1") is not None  # stale, within the grace
    assert await cache.get_workspace("acme", "slug") is not None
    clock.now += 0.2  # 30.1 s after the last feed read
    assert cache.cached_token("h1") is None
    with pytest.raises(StoreUnavailable):
        await cache.find_token("h1")
    with pytest.raises(StoreUnavailable):
        await cache.get_workspace("acme", "slug")
    health.synced()  # the feed reads the store again: outage over, nothing stale any more
    switch.mode = "up"
    assert cache.cached_token("h1") is None  # its TTL passed long ago
    assert await cache.find_token("h1") is not None


async def test_a_hung_lookup_opens_the_circuit_then_one_probe_per_interval(parts: Any) -> None:
    cache, health, switch, clock = parts
    woken: list[bool] = []
    health.on_probe_ok = lambda: woken.append(True)
    switch.mode = "hang"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        await cache.find_token("h1")
    assert err.value.reason == "store_timeout"
    assert time.monotonic() - started < 0.5  # the 0.2 s lookup timeout, not the hang
    asked = switch.asked
    for _ in range(100):  # the circuit is open: refused without asking the store
        with pytest.raises(StoreUnavailable):
            await cache.find_token("h1")
    assert switch.asked == asked
    clock.now += 1.0  # half-open: one probe goes through, and it answers
    switch.mode = "up"
    assert await cache.find_token("h1") is not None
    assert switch.asked == asked + 1 and woken == [True]
    assert health.down_since is not None  # only a change-feed read ends the outage
    assert cache.cached_token("h1") is None  # a probe's answer is not cached

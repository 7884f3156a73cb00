"""The auth caches' map (gateway/core/ttlmap.py) and the token index built on it (gateway/store/cache.py).

What users rely on: a cached decision is never served past its TTL, the caches stay within their
size, and a change to a token (revocation, rotation) drops every cached secret of that token, even
secrets cached at different times.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.config import CacheConfig
from gateway.core.ttlmap import TTLMap
from gateway.store.base import Change, Membership, TokenRecord, User, Workspace
from gateway.store.cache import AuthCache
from gateway.store.sqlite import SQLiteStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_not_served_past_its_ttl() -> None:
    clock = Clock()
    m: TTLMap[str, int] = TTLMap(10, ttl=60, timer=clock)
    m["a"] = 1
    clock.now += 59.9
    assert m.get("a") == 1 and "a" in m
    clock.now += 0.1
    assert m.get("a") is None and "a" not in m
    assert m.get("a", 7) == 7
    assert m.pop("a") is None


def test_setting_again_restarts_the_ttl_and_the_order() -> None:
    clock = Clock()
    m: TTLMap[str, int] = TTLMap(2, ttl=60, timer=clock)
    m["a"] = 1
    m["b"] = 2
    clock.now += 30
    m["a"] = 3  # now the newest
    m["c"] = 4  # full: the oldest, "b", goes
    assert (m.get("a"), m.get("b"), m.get("c")) == (3, None, 4)
    clock.now += 45  # 75 s after "b", 45 s after "a"
    assert m.get("a") == 3


def test_size_is_bounded_and_the_oldest_goes_first() -> None:
    evicted: list[None] = []
    dropped: list[tuple[int, int]] = []
    m: TTLMap[int, int] = TTLMap(100, ttl=60, on_drop=lambda k, v: dropped.append((k, v)))
    m.on_evict = lambda: evicted.append(None)
    for i in range(250):
        m[i] = i * 2
    assert len(m) == 100
    assert [m.get(i) for i in (149, 150, 249)] == [None, 300, 498]
    assert len(evicted) == 150  # only size evictions count for the eviction metric
    assert dropped[:3] == [(0, 0), (1, 2), (2, 4)]


def test_expired_entries_are_dropped_as_new_ones_arrive() -> None:
    clock = Clock()
    dropped: list[str] = []
    m: TTLMap[str, int] = TTLMap(1000, ttl=10, timer=clock, on_drop=lambda k, v: dropped.append(k))
    m.on_evict = lambda: dropped.append("EVICTED")
    m["old"] = 1
    clock.now += 11
    m["new"] = 2
    assert dropped == ["old"]  # expiry, not a size eviction
    assert len(m) == 1


async def test_a_token_change_drops_every_cached_secret_of_it(tmp_path: Path) -> None:
    """Two secrets of one token (rotation overlap), looked up 50 s apart, TTL 60 s.

    At 70 s the first secret's entry has expired but the second is still cached: revoking the
    token must still drop the second. An index entry that expired with the first would miss it.
    """
    store = await _store_with_token(tmp_path)
    try:
        assert await store.rotate_token("tok_1", "h2", "gw_live_def", old_not_after=1e12)
        clock = Clock()
        cache = AuthCache(store, CacheConfig(ttl=60), timer=clock)
        assert await cache.find_token("h1") is not None
        clock.now += 50
        assert await cache.find_token("h2") is not None
        clock.now += 20
        assert cache.cached_token("h1") is None  # expired (kept for outages, still indexed)
        assert cache.token_hashes == {"tok_1": {"h1", "h2"}}
        assert cache.cached_token("h2") is not None
        cache.apply(Change(seq=1, entity="token", entity_id="tok_1"))
        assert cache.cached_token("h2") is None
        assert cache.token_hashes == {}
    finally:
        await store.close()


def test_a_zero_ttl_caches_nothing() -> None:
    dropped: list[str] = []
    m: TTLMap[str, int] = TTLMap(10, ttl=0, on_drop=lambda k, v: dropped.append(k))
    assert m.put("a", 1) is False
    assert m.get("a") is None and len(m) == 0 and dropped == []


class Gated:
    """The real SQLite store, whose token lookups wait until the test lets them answer."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.gate = asyncio.Event()
        self.asked = asyncio.Event()

    async def find_token(self, token_hash: str) -> tuple[TokenRecord, float | None] | None:
        found = await self.store.find_token(token_hash)  # read before the change below
        self.asked.set()
        await self.gate.wait()
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def _store_with_token(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(f"sqlite:///{tmp_path}/tok.db")
    await store.open()
    await store.create_workspace(
        Workspace(id="ws_1", slug="acme", name="Acme", plan="free", created_at=0.0)
    )
    await store.create_token(_record(), "h1")
    return store


def _record() -> TokenRecord:
    return TokenRecord(
        id="tok_1",
        name="t",
        kind="api_key",
        type_prefix="gw_live_",
        environment="live",
        visible_prefix="gw_live_abc",
        scopes=frozenset({"items:read"}),
        workspace_id="ws_1",
        user_id=None,
        created_at=0.0,
    )


async def test_a_lookup_that_overlaps_a_change_is_not_cached(tmp_path: Path) -> None:
    """A revocation applied while a lookup is in flight: the older answer must not be cached.

    It still answers the request that asked (that request raced the revocation), but cached it
    would be served for a whole TTL after the change feed had dropped the token.
    """
    store = await _store_with_token(tmp_path)
    try:
        gated = Gated(store)
        cache = AuthCache(gated, CacheConfig(ttl=60))
        lookup = asyncio.ensure_future(cache.find_token("h1"))
        await gated.asked.wait()
        assert await store.revoke_token("tok_1", at=1.0)
        cache.apply(Change(seq=1, entity="token", entity_id="tok_1"))
        gated.gate.set()
        found = await lookup
        assert found is not None and found[0].revoked_at is None  # the pre-revocation answer
        assert cache.cached_token("h1") is None and cache.token_hashes == {}
        # the next lookup asks the store again and sees the revocation
        again = await cache.find_token("h1")
        assert again is not None and again[0].revoked_at == 1.0
    finally:
        await store.close()


async def test_zero_ttl_keeps_the_index_empty(tmp_path: Path) -> None:
    store = await _store_with_token(tmp_path)
    try:
        cache = AuthCache(store, CacheConfig(ttl=0))
        for _ in range(3):
            assert await cache.find_token("h1") is not None
        assert cache.cached_token("h1") is None and cache.token_hashes == {}
    finally:
        await store.close()


async def test_a_secret_cached_again_after_expiry_stays_indexed(tmp_path: Path) -> None:
    store = await _store_with_token(tmp_path)
    try:
        clock = Clock()
        cache = AuthCache(store, CacheConfig(ttl=60), timer=clock)
        assert await cache.find_token("h1") is not None
        clock.now += 61
        assert await cache.find_token("h1") is not None  # expired: looked up and cached again
        assert cache.token_hashes == {"tok_1": {"h1"}}
        cache.apply(Change(seq=1, entity="token", entity_id="tok_1"))
        assert cache.cached_token("h1") is None
    finally:
        await store.close()


async def test_a_membership_lookup_that_overlaps_a_change_is_not_cached(tmp_path: Path) -> None:
    """The same rule for memberships: a removal applied mid-lookup must not be undone by caching."""
    store = await _store_with_token(tmp_path)
    try:
        await store.create_user(User(id="usr_1", email="a@example.com", name=None, created_at=0.0))
        await store.set_membership(Membership("usr_1", "ws_1", "member", 0.0))

        class GatedMembership(Gated):
            async def get_membership(self, user_id: str, workspace_id: str) -> Membership | None:
                found = await self.store.get_membership(user_id, workspace_id)
                self.asked.set()
                await self.gate.wait()
                return found

        gated = GatedMembership(store)
        cache = AuthCache(gated, CacheConfig(ttl=60))
        lookup = asyncio.ensure_future(cache.get_membership("usr_1", "ws_1"))
        await gated.asked.wait()
        assert await store.remove_membership("usr_1", "ws_1")
        cache.apply(Change(seq=1, entity="membership", entity_id="usr_1:ws_1"))
        gated.gate.set()
        assert await lookup is not None  # the answer read before the removal
        assert await cache.get_membership("usr_1", "ws_1") is None  # not served from cache
    finally:
        await store.close()

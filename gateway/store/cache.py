"""Per-process caches of store lookups, kept honest by the store's change feed.

Lookups go negative cache → positive cache → store. Every cached value is bounded in size and age
(:class:`~gateway.core.ttlmap.TTLMap`); on top of that a background task
(:class:`~gateway.store.changefeed.ChangeFeed`) polls the store's change feed every
``cache.poll_interval`` (≤ 1 s) and :meth:`AuthCache.apply` drops exactly what changed, so a
revocation, expiry change, membership or role change, or workspace deletion made by any process
(another worker, the CLI, another instance) wins over the cache within a second. Expiry itself
needs no feed: it is compared with the clock on every request.

Store outages (see :mod:`gateway.store.health`): every store lookup is bounded and goes through the
circuit breaker, and while the store is down any entry still held is served, even past its TTL
(stale-while-unavailable), until ``outage_grace`` after the last change-feed read. That is safe
because the feed had dropped every entry a change touched up to that read; TTLs only bound how
long an entry lives while the feed is healthy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway.config import CacheConfig
from gateway.core.errors import StoreUnavailable
from gateway.core.ttlmap import TTLMap
from gateway.store.base import Change, Membership, Store, TokenRecord, Workspace
from gateway.store.health import StoreHealth

T = TypeVar("T")

__all__ = ["AuthCache"]

_ABSENT = object()


class AuthCache:
    """Positive and negative caches for tokens, workspaces and memberships."""

    def __init__(
        self,
        store: Store,
        config: CacheConfig,
        timer: Callable[[], float] = time.monotonic,
        health: StoreHealth | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.health = health or StoreHealth(timer=timer)
        self._on_hit: Callable[[str], None] = lambda kind: None
        self._on_miss: Callable[[str], None] = lambda kind: None
        self.tokens: TTLMap[str, tuple[TokenRecord, float | None]] = TTLMap(
            config.size, config.ttl, timer, on_drop=self._unindex
        )
        # Token id → the hashes cached for it, so a change to a token drops every one of them.
        # Kept exact by ``_unindex``: an entry leaves here exactly when its hash leaves ``tokens``.
        self.token_hashes: dict[str, set[str]] = {}
        self.negative: TTLMap[str, bool] = TTLMap(config.negative_size, config.negative_ttl, timer)
        self.workspaces: TTLMap[tuple[str, str], Workspace | None] = TTLMap(
            config.size, config.ttl, timer
        )
        self.memberships: TTLMap[tuple[str, str], Membership | None] = TTLMap(
            config.size, config.ttl, timer
        )
        # Counts changes applied; a lookup that saw it move while it waited does not cache.
        self._epoch = 0
        # Store lookups in progress, by key (see _single_flight).
        self._inflight: dict[tuple[str, ...], asyncio.Future[Any]] = {}

    def set_hooks(
        self,
        on_hit: Callable[[str], None],
        on_miss: Callable[[str], None],
        on_evict: Callable[[str], None],
    ) -> None:
        """Observe hits, misses and size evictions per cache ("token", "negative", …)."""
        self._on_hit, self._on_miss = on_hit, on_miss
        caches: dict[str, TTLMap[Any, Any]] = {
            "token": self.tokens,
            "negative": self.negative,
            "workspace": self.workspaces,
            "membership": self.memberships,
        }
        for name, c in caches.items():
            c.on_evict = lambda name=name: on_evict(name)

    @property
    def epoch(self) -> int:
        """Moves with every change applied and every clear: whatever was derived from these
        caches at another epoch may be stale (the cache-hit memo, gateway/pipeline/memo.py)."""
        return self._epoch

    def count_hits(self, kinds: tuple[str, ...]) -> None:
        """Count cache hits of ``kinds`` that a memo answered on these caches' behalf."""
        for kind in kinds:
            self._on_hit(kind)

    def cached_token(self, token_hash: str) -> tuple[TokenRecord, float | None] | None:
        """The token from the positive cache, without a coroutine; ``None`` when not cached."""
        if self.health.down_since is not None:
            return self._stale_token(token_hash)
        hit = self.tokens.get(token_hash)
        if hit is not None:
            self._on_hit("token")
        return hit

    async def find_token(self, token_hash: str) -> tuple[TokenRecord, float | None] | None:
        """What the negative cache or the store says of a token :meth:`cached_token` did not hold.

        The caller has just read the positive cache (authn does so without a coroutine on the hot
        path), so it is not read again here; a token cached since is simply looked up anew.
        """
        if not self.health.cached_ok():
            raise StoreUnavailable(reason="store_down")  # past the grace: no cached answer either
        if token_hash in self.negative:
            self._on_hit("negative")
            return None
        self._on_miss("token")
        epoch = self._epoch
        try:
            found = await self.health.call(
                lambda: self.store.find_token(token_hash), "token lookup"
            )
        except StoreUnavailable:
            stale = self._stale_token(token_hash)  # the outage began with this very lookup
            if stale is None:
                raise
            return stale
        if epoch != self._epoch or self.health.down_since is not None:
            # A change arrived while the store was asked (a revocation, say): the answer may
            # predate it, so it serves this request but is not cached, or it would outlive the
            # change for a whole TTL. Nor is a probe's answer during an outage: the feed has not
            # caught up yet.
            return found
        if found is None:
            self.negative[token_hash] = True
            return None
        if not self.tokens.put(token_hash, found):
            return found
        hashes = self.token_hashes.get(found[0].id)
        if hashes is None:
            self.token_hashes[found[0].id] = {token_hash}
        else:
            hashes.add(token_hash)
        return found

    def _stale_token(self, token_hash: str) -> tuple[TokenRecord, float | None] | None:
        """During an outage within the grace: the cached entry, whatever its age."""
        if not self.health.cached_ok():
            return None
        hit = self.tokens.peek(token_hash)
        if hit is not None:
            self._on_hit("token")
        return hit

    def _unindex(self, token_hash: str, found: tuple[TokenRecord, float | None]) -> None:
        """``tokens`` dropped ``token_hash``: forget it in the id index too."""
        hashes = self.token_hashes.get(found[0].id)
        if hashes is not None:
            hashes.discard(token_hash)
            if not hashes:
                del self.token_hashes[found[0].id]

    async def get_workspace(self, key: str, by: str) -> Workspace | None:
        return await self._lookup(
            "workspace", self.workspaces, (by, key), lambda: self.store.get_workspace(key, by)
        )

    async def get_membership(self, user_id: str, workspace_id: str) -> Membership | None:
        return await self._lookup(
            "membership",
            self.memberships,
            (user_id, workspace_id),
            lambda: self.store.get_membership(user_id, workspace_id),
        )

    async def _lookup(
        self,
        kind: str,
        cache: TTLMap[tuple[str, str], T],
        ck: tuple[str, str],
        fetch: Callable[[], Awaitable[T]],
    ) -> T:
        """Cached value of ``ck`` (``None`` answers are cached too), else one shared lookup."""
        health = self.health
        if health.down_since is None:
            hit = cache.get(ck, _ABSENT)
        elif health.cached_ok():
            hit = cache.peek(ck, _ABSENT)  # stale-while-unavailable
        else:
            raise StoreUnavailable(reason="store_down")
        if hit is not _ABSENT:
            self._on_hit(kind)
            return hit  # type: ignore[return-value]
        self._on_miss(kind)

        async def fetch_and_cache() -> T:
            epoch = self._epoch
            value = await health.call(fetch, f"{kind} lookup")
            if epoch == self._epoch and health.down_since is None:  # see find_token
                cache[ck] = value
            return value

        try:
            return await self._single_flight((kind, *ck), fetch_and_cache)
        except StoreUnavailable:
            hit = cache.peek(ck, _ABSENT) if health.cached_ok() else _ABSENT
            if hit is _ABSENT:
                raise
            return hit  # type: ignore[return-value]

    async def _single_flight(self, key: tuple[str, ...], fetch: Callable[[], Awaitable[T]]) -> T:
        """One store lookup per key at a time: concurrent misses of one key share it.

        When an entry expires under load, every request in flight misses it at once; without
        this each would ask the store (a burst of up to one lookup per open connection). The
        lookup runs as its own task, so a caller that goes away does not cancel it for the rest.
        """
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(task)

    def _landed(self, key: tuple[str, ...], task: asyncio.Future[Any]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here: every caller may have left before it ended

    def apply(self, change: Change) -> None:
        """Drop whatever ``change`` may have made stale."""
        self._epoch += 1  # lookups in flight now may be older than this change: not cached
        if change.entity == "token":
            for h in self.token_hashes.pop(change.entity_id, ()):
                self.tokens.pop(h, None)
            # A freshly minted secret cannot have been presented before it existed, but a
            # certificate registration's key can: the certificate was tried, refused, then
            # registered. Forget the refusals (rare events; the negative cache refills).
            self.negative.clear()
        elif change.entity == "membership":
            user_id, _, ws_id = change.entity_id.partition(":")
            self.memberships.pop((user_id, ws_id), None)
            self._inflight.pop(("membership", user_id, ws_id), None)
        elif change.entity in {"workspace", "user"}:
            # Rare events: dropping whole maps is simpler than indexing them and always correct.
            self.workspaces.clear()
            self.memberships.clear()
            self._inflight.clear()  # later callers start a fresh lookup
        else:
            self.clear()

    def clear(self) -> None:
        self._epoch += 1
        for c in (self.tokens, self.token_hashes, self.negative, self.workspaces, self.memberships):
            c.clear()
        self._inflight.clear()

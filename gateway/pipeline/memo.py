"""The cache-hit memo (issue 18): what an allowed request needs, computed once per token and
workspace key, so a cache hit is one lookup, the per-request checks, and a header merge.

Keyed by the token's hash (never its value), an entry holds the token's record and principal and,
per workspace key a request named, the identity, its block of identity headers and the routes
already authorized for it. It is derived from the auth caches (:class:`gateway.store.cache.AuthCache`)
and never outlives what it was derived from:

* it is used only at the caches' epoch it was built at, and that epoch moves with every change the
  change feed applies and every clear: a revocation, rotation, membership or role change,
  workspace or user change wins over the memo at the same moment it wins over the caches;
* it expires when the first cache entry it was built from expires (same TTL, same clock);
* while the store is unreachable it is not used at all: the caches' own stale-while-unavailable
  rules (``store.outage_grace``) decide;
* expiry, the rotation grace and revocation are checked on the record on every request
  (:meth:`Authenticator.admit`), and the extra checks (rate limits, …) always run;
* a config reload builds a new runtime, and with it an empty memo.

Only what was allowed is remembered, and only for a token that was already in the positive cache
when the request came (its second request, at the earliest): a cache miss costs the store work and
nothing more, and a flood of distinct tokens never fills the memo. Every refusal takes the full
path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config import TokenType
from gateway.core.identity import Identity, Principal, log_fields
from gateway.store.base import TokenRecord
from gateway.store.cache import AuthCache

__all__ = ["HitMemo", "TokenHit", "WorkspaceHit"]

# A token acting under more workspace keys than this has its entry started afresh (bounded).
MAX_KEYS_PER_TOKEN = 64


@dataclass(slots=True)
class WorkspaceHit:
    """One token acting in one workspace key: what the workspace and scope steps concluded."""

    identity: Identity
    headers: tuple[tuple[str, str], ...]  # the identity headers, in order (Forwarder)
    log_fields: str  # the access line's caller fields (gateway.core.identity.log_fields)
    kinds: tuple[str, ...]  # the cache hits the full path would have counted
    deadline: float
    allowed: set[int] = field(default_factory=set)  # id() of routes already authorized


@dataclass(slots=True)
class TokenHit:
    """One token as the positive cache holds it, and its principal."""

    record: TokenRecord
    not_after: float | None
    token_type: TokenType
    principal: Principal
    epoch: int
    deadline: float
    workspaces: dict[str | None, WorkspaceHit] = field(default_factory=dict)


class HitMemo:
    """Per runtime: token hash → :class:`TokenHit`, at most ``size`` tokens."""

    def __init__(self, cache: AuthCache, size: int) -> None:
        self.cache = cache
        self.size = max(1, size)
        self.entries: dict[str, TokenHit] = {}

    def token(self, digest: str, tt: TokenType) -> TokenHit | None:
        """The entry for a token hash, when it is still exactly what the caches would say."""
        hit = self.entries.get(digest)
        if hit is None:
            return None
        cache = self.cache
        if (
            hit.epoch != cache.epoch
            or hit.token_type is not tt
            or cache.health.down_since is not None
            or hit.deadline <= cache.tokens.timer()
        ):
            return None
        cache.count_hits(("token",))
        return hit

    def workspace(self, hit: TokenHit, key: str | None) -> WorkspaceHit | None:
        found = hit.workspaces.get(key)
        if found is None or found.deadline <= self.cache.tokens.timer():
            return None
        self.cache.count_hits(found.kinds)
        return found

    def remember(
        self,
        epoch: int,
        digest: str,
        tt: TokenType,
        principal: Principal,
        key: str | None,
        by: tuple[str, str],
        identity: Identity,
        headers: tuple[tuple[str, str], ...],
    ) -> WorkspaceHit | None:
        """Remember an allowed request's conclusions, if the caches hold everything they came
        from, unchanged since ``epoch`` (read before the request's first lookup); else ``None``.

        ``by`` is the workspace cache's key for the workspace the request resolved.
        """
        cache = self.cache
        if epoch != cache.epoch or cache.health.down_since is not None:
            return None
        found = cache.tokens.peek(digest)
        token_until = cache.tokens.expiry(digest)
        if found is None or token_until is None or found[0] is not principal.token:
            return None
        ws_until = cache.workspaces.expiry(by)
        if ws_until is None:
            return None
        kinds: tuple[str, ...] = ("workspace",)
        if identity.role is not None:  # the membership was looked up, so it was cached
            member_until = cache.memberships.expiry(
                (principal.user_id or "", identity.workspace.id)
            )
            if member_until is None:
                return None
            ws_until = min(ws_until, member_until)
            kinds = ("workspace", "membership")
        hit = self.entries.get(digest)
        if hit is None or hit.epoch != epoch or hit.record is not found[0]:
            if len(self.entries) >= self.size:
                self.entries.clear()  # refilled from the caches, one request per token
            hit = self.entries[digest] = TokenHit(
                found[0], found[1], tt, principal, epoch, token_until
            )
        elif len(hit.workspaces) >= MAX_KEYS_PER_TOKEN:
            hit.workspaces.clear()
        ws_hit = hit.workspaces[key] = WorkspaceHit(
            identity, headers, log_fields(principal, identity), kinds, min(ws_until, token_until)
        )
        return ws_hit

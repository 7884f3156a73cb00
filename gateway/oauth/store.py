"""OAuth records and the :class:`OAuthStore` protocol, kept apart from the core :class:`Store` so a
backend adds OAuth as one separate group of methods (:mod:`gateway.oauth.sqlite`,
:mod:`gateway.oauth.postgres`).

Only digests of client secrets, codes and refresh tokens are stored. Access tokens are ordinary
:class:`~gateway.store.base.TokenRecord` rows (kind ``oauth_access``, ``client_id``, ``grant_id``),
so authentication, caching and change-feed invalidation need nothing new. Every method that revokes
access tokens appends their ids to the change feed in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.store.base import Store, TokenRecord

__all__ = [
    "ClientRecord",
    "CodeRecord",
    "GrantRecord",
    "OAuthStore",
    "RefreshRecord",
    "oauth_store_for",
]


@dataclass(frozen=True, slots=True)
class ClientRecord:
    id: str
    name: str
    redirect_uris: tuple[str, ...]
    scopes: frozenset[str]
    created_at: float
    workspace_id: str | None = None  # the workspace that registered it (None: the operator)
    secret_hash: str | None = None  # None: a public client (native or browser app)

    @property
    def confidential(self) -> bool:
        return self.secret_hash is not None


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """One approved consent: the family every code and token issued from it belongs to."""

    id: str
    client_id: str
    user_id: str
    workspace_id: str
    scopes: frozenset[str]
    created_at: float
    revoked_at: float | None = None
    revoke_reason: str | None = None


@dataclass(frozen=True, slots=True)
class CodeRecord:
    hash: str
    grant_id: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    code_challenge_method: str
    created_at: float
    expires_at: float
    used_at: float | None = None


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    id: str
    hash: str
    grant_id: str
    client_id: str
    access_token_id: str
    created_at: float
    expires_at: float
    rotated_at: float | None = None
    replaced_by: str | None = None
    revoked_at: float | None = None


class OAuthStore(Protocol):
    """What the authorization server needs from persistent state (raises ``StoreUnavailable``)."""

    async def create_client(self, client: ClientRecord) -> None: ...
    async def get_client(self, client_id: str) -> ClientRecord | None: ...
    async def list_clients(self, *, workspace_id: str | None = None) -> Sequence[ClientRecord]: ...
    async def delete_client(self, client_id: str, at: float) -> bool:
        """Remove the app and revoke every grant and token it holds."""
        ...

    async def create_grant(self, grant: GrantRecord, code: CodeRecord) -> None:
        """Store an approved consent together with its one authorization code."""
        ...

    async def get_grant(self, grant_id: str) -> GrantRecord | None: ...
    async def list_grants(
        self, *, user_id: str | None = None, workspace_id: str | None = None
    ) -> Sequence[GrantRecord]: ...
    async def revoke_grant(self, grant_id: str, at: float, reason: str) -> bool:
        """Revoke the grant, its refresh tokens and its access tokens, in one transaction."""
        ...

    async def consume_code(self, code_hash: str, at: float) -> tuple[CodeRecord, bool] | None:
        """The code and whether this call was its first use (it is marked used either way)."""
        ...

    async def find_refresh(self, refresh_hash: str) -> RefreshRecord | None: ...
    async def get_refresh(self, refresh_id: str) -> RefreshRecord | None: ...

    async def issue(
        self,
        *,
        grant_id: str,
        access: TokenRecord,
        access_hash: str,
        refresh: RefreshRecord,
        rotate_from: str | None = None,
        supersede: str | None = None,
        at: float,
    ) -> bool:
        """Store a new access + refresh pair for an active grant, atomically.

        ``rotate_from``: the refresh token being exchanged; it must not have been rotated yet.
        ``supersede``: instead, a lost-response retry: that successor (which must still be unused)
        and its access token are revoked, and ``rotate_from`` (already rotated) now points at the
        new refresh token. Returns False, storing nothing, when the grant is revoked or a
        condition no longer holds (a concurrent exchange won).
        """
        ...


def oauth_store_for(store: Store) -> OAuthStore:
    """The OAuth side of ``store``: its ``oauth_store()`` if it has one, else the SQLite adapter."""
    factory = getattr(store, "oauth_store", None)
    if callable(factory):
        found: OAuthStore = factory()
        return found
    from gateway.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        from gateway.oauth.sqlite import SQLiteOAuthStore

        return SQLiteOAuthStore(store)
    raise NotImplementedError(f"{type(store).__name__} has no OAuth store yet")

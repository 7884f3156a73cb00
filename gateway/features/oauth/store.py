"""OAuth storage as the authorization server sees it: the :class:`OAuthStore` protocol, its records
(:mod:`gateway.features.oauth.records`), and :func:`oauth_store_for`, the OAuth side of a core store.

The implementation (:mod:`gateway.features.oauth.sqlstore`) writes through the core store's public
transaction API (:meth:`gateway.store.base.Store.transaction`), so every method that revokes access
tokens appends their ids to the change feed in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.features.oauth.records import ClientRecord, CodeRecord, GrantRecord, RefreshRecord
from gateway.features.oauth.sqlstore import SQLOAuthStore
from gateway.store.base import Store, TokenRecord

__all__ = [
    "ClientRecord",
    "CodeRecord",
    "GrantRecord",
    "OAuthStore",
    "RefreshRecord",
    "oauth_store_for",
]


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
    """The OAuth side of ``store``, sharing its connections and transactions.

    One implementation serves every backend (it writes through the store's public transaction API
    and lets the store's dialect adapt its SQL), so there is nothing to choose per backend.
    """
    return SQLOAuthStore(store)

"""OAuth records and their tables, registered with the store's table registry.

Only digests of client secrets, codes and refresh tokens are stored. Access tokens are ordinary
:class:`~gateway.store.base.TokenRecord` rows (kind ``oauth_access``, ``client_id``, ``grant_id``),
so authentication, caching and change-feed invalidation need nothing new. Registering the tables
here (:func:`gateway.store.tables.register`) is what makes ``gateway migrate-store`` copy them: the
core store names no OAuth table.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.store.tables import register, table

__all__ = [
    "CLIENTS",
    "CODES",
    "GRANTS",
    "REFRESH_TOKENS",
    "ClientRecord",
    "CodeRecord",
    "GrantRecord",
    "RefreshRecord",
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


# -- tables (migrations sqlite/0002_oauth.sql, postgres/0004_oauth.sql) -----------------------------

CLIENTS = register(
    table(
        "oauth_clients",
        ClientRecord,
        order_by=("id",),
        label="oauth_apps",
        sets=("scopes",),
        lists=("redirect_uris",),
    )
)
GRANTS = register(
    table("oauth_grants", GrantRecord, order_by=("id",), label="oauth_grants", sets=("scopes",))
)
CODES = register(table("oauth_codes", CodeRecord, order_by=("hash",), label="oauth_codes"))
REFRESH_TOKENS = register(
    table("oauth_refresh_tokens", RefreshRecord, order_by=("id",), label="oauth_refresh_tokens")
)

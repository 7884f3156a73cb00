"""Records the store holds, their tables, and the :class:`Store` protocol every backend implements.

Every mutation that can change an authorization decision (token revoke/rotate/expiry, membership,
role, workspace deletion) also appends a :class:`Change` in the same transaction; running gateways
read that feed to invalidate their caches (see :mod:`gateway.store.changefeed`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.store.tables import Dialect, Queries, Row, StoreDump, register, table

__all__ = [
    "AuditEntry",
    "AuditEvent",
    "Change",
    "Membership",
    "NonceRecord",
    "SecretRecord",
    "Store",
    "StoreDump",
    "TokenRecord",
    "Transaction",
    "User",
    "Workspace",
]


@dataclass(frozen=True, slots=True)
class Workspace:
    id: str
    slug: str
    name: str
    plan: str
    created_at: float
    deleted_at: float | None = None


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class Membership:
    user_id: str
    workspace_id: str
    role: str
    created_at: float


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token's metadata; never its plaintext, and the hash lives in a separate secrets table."""

    id: str
    name: str
    kind: str
    type_prefix: str
    environment: str
    visible_prefix: str
    scopes: frozenset[str]
    workspace_id: str
    user_id: str | None
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None
    allowed_domains: tuple[str, ...] = ()
    created_by: str | None = None
    # OAuth: which client and grant issued it (issue 5); None for tokens minted directly.
    client_id: str | None = None
    grant_id: str | None = None

    def state(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    entity: str  # "token" | "membership" | "workspace" | "user"
    entity_id: str  # token id, "user_id:workspace_id", workspace id, user id


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    at: float
    action: str  # "token.create" | "token.rotate" | "token.revoke" | …
    actor: str | None
    address: str | None
    token_id: str | None
    visible_prefix: str | None
    workspace_id: str | None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An audit event to write in the same transaction as the change it records (issue 23): a
    token create, revoke or rotate that commits always has its event, and one that does not
    never has."""

    action: str
    at: float
    actor: str | None
    address: str | None
    token_id: str | None
    visible_prefix: str | None
    workspace_id: str | None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class SecretRecord:
    """One stored secret hash of a token (a rotated token has several until their grace ends)."""

    hash: str
    token_id: str
    not_after: float | None


@dataclass(frozen=True, slots=True)
class NonceRecord:
    """A single-use value already spent (a dashboard sign-in link id) and until when it matters."""

    nonce: str
    expires_at: float


# -- tables (gateway.store.tables): parents before the rows that reference them --------------------

WORKSPACES = register(table("workspaces", Workspace, order_by=("id",), label="workspaces"))
USERS = register(table("users", User, order_by=("id",), label="users"))
MEMBERSHIPS = register(
    table("memberships", Membership, order_by=("user_id", "workspace_id"), label="memberships")
)
TOKENS = register(
    table(
        "tokens",
        TokenRecord,
        order_by=("id",),
        label="tokens",
        sets=("scopes",),
        lists=("allowed_domains",),
    )
)
SECRETS = register(table("token_secrets", SecretRecord, order_by=("hash",), label="secrets"))
AUDIT = register(
    table("audit_log", AuditEvent, order_by=("id",), label="audit_events", serial="id")
)
NONCES = register(table("used_nonces", NonceRecord, order_by=("nonce",), label="used_nonces"))

# The tokens table's columns as both backends select them (``t`` is the tokens table's alias), and
# where find_token's one extra column, its secret's ``not_after``, follows them.
TOKEN_COLUMNS = ", ".join(f"t.{c.name}" for c in TOKENS.columns)
NOT_AFTER = len(TOKENS.columns)


class Transaction(Queries, Protocol):
    """One open write transaction of a store (:meth:`Store.transaction`), in its SQL dialect.

    What a feature that keeps its own tables (OAuth) writes through, so its rows and the core rows
    and change-feed entries they imply commit together or not at all.
    """

    async def change(self, entity: str, entity_id: str) -> None:
        """Append to the change feed: running gateways drop what they cached about it."""
        ...

    async def insert_token(self, record: TokenRecord, token_hash: str) -> None:
        """A new token, its secret's digest and its change-feed entry."""
        ...


class Store(Protocol):
    """What the gateway needs from persistent state. Backends raise ``StoreUnavailable`` on outage."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    # -- for features that keep their own tables (gateway.features.oauth) -----------------------------------
    @property
    def dialect(self) -> Dialect:
        """Which SQL this store speaks; features choose their own storage code by its name."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Rows of one read of committed data."""
        ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    # -- hot path (cache misses only) --------------------------------------------------------------
    async def find_token(self, token_hash: str) -> tuple[TokenRecord, float | None] | None:
        """The token a secret hash belongs to, with that secret's own ``not_after`` (rotation grace)."""
        ...

    async def get_workspace(self, key: str, by: str = "any") -> Workspace | None: ...
    async def get_membership(self, user_id: str, workspace_id: str) -> Membership | None: ...

    # -- change feed -------------------------------------------------------------------------------
    async def latest_change(self) -> int: ...
    async def changes_since(self, seq: int, limit: int = 1000) -> Sequence[Change]: ...

    # -- management --------------------------------------------------------------------------------
    async def create_workspace(self, ws: Workspace) -> None: ...
    async def delete_workspace(self, workspace_id: str, at: float) -> bool: ...
    async def list_workspaces(self) -> Sequence[Workspace]: ...
    async def set_workspace_plan(self, workspace_id: str, plan: str) -> bool: ...
    async def create_user(self, user: User) -> None: ...
    async def get_user(self, key: str) -> User | None: ...
    async def list_users(self) -> Sequence[User]: ...
    async def set_membership(self, m: Membership) -> None: ...
    async def remove_membership(self, user_id: str, workspace_id: str) -> bool: ...
    async def list_memberships(
        self, *, workspace_id: str | None = None, user_id: str | None = None
    ) -> Sequence[Membership]: ...

    # ``audit``: an event written in the same transaction (only when the change is made).
    async def create_token(
        self, record: TokenRecord, token_hash: str, audit: AuditEntry | None = None
    ) -> None: ...
    async def get_token(self, token_id: str) -> TokenRecord | None: ...
    async def list_tokens(
        self, *, workspace_id: str | None = None, user_id: str | None = None
    ) -> Sequence[TokenRecord]: ...
    async def revoke_token(
        self, token_id: str, at: float, audit: AuditEntry | None = None
    ) -> bool: ...
    async def rotate_token(
        self,
        token_id: str,
        new_hash: str,
        new_visible_prefix: str,
        old_not_after: float,
        audit: AuditEntry | None = None,
    ) -> bool: ...
    async def set_token_expiry(self, token_id: str, expires_at: float | None) -> bool: ...
    async def record_usage(self, last_used: Mapping[str, float]) -> None: ...
    async def allowed_domains_in_use(self) -> frozenset[str]:
        """Every allowed domain of every unrevoked token (answers CORS preflights)."""
        ...

    async def count_tokens_by_state(self, now: float) -> Mapping[str, int]: ...

    async def use_nonce(self, nonce: str, expires_at: float) -> bool:
        """Record a single-use value: ``True`` the first time, ``False`` ever after (atomically,
        across processes), until ``expires_at`` has passed and the row may be forgotten."""
        ...

    async def add_audit(
        self,
        action: str,
        *,
        at: float,
        actor: str | None,
        address: str | None,
        token_id: str | None,
        visible_prefix: str | None,
        workspace_id: str | None,
        detail: str | None = None,
    ) -> None: ...
    async def list_audit(
        self, *, workspace_id: str | None = None, limit: int = 100
    ) -> Sequence[AuditEvent]: ...

    # -- moving between stores ---------------------------------------------------------------------
    async def export_all(self) -> StoreDump:
        """A consistent copy of every record (secrets as hashes; never plaintext)."""
        ...

    async def import_all(self, dump: StoreDump) -> None:
        """Load ``dump`` into this store in one transaction; refuses a store that has data."""
        ...

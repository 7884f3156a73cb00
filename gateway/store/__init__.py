"""Token store: records, the :class:`Store` protocol and its backends, chosen by URL."""

from __future__ import annotations

from gateway.store.base import (
    AuditEvent,
    Change,
    Membership,
    SecretRecord,
    Store,
    StoreDump,
    TokenRecord,
    User,
    Workspace,
)

__all__ = [
    "AuditEvent",
    "Change",
    "Membership",
    "SecretRecord",
    "Store",
    "StoreDump",
    "TokenRecord",
    "User",
    "Workspace",
    "open_store",
]


def open_store(url: str, *, connect_timeout: float = 5.0, query_timeout: float = 10.0) -> Store:
    """The backend for ``url`` (``sqlite:///path`` or ``postgresql://…``), not yet opened.

    The timeouts bound how long a request can wait on an unreachable network store before it is
    refused with 503; they do not apply to the embedded SQLite file.
    """
    # Each backend is imported when chosen: a SQLite gateway never loads asyncpg, a PostgreSQL one
    # never loads aiosqlite.
    if url.startswith("sqlite://"):
        from gateway.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql://", "postgres://")):
        from gateway.store.postgres import PostgresStore

        return PostgresStore(url, connect_timeout=connect_timeout, query_timeout=query_timeout)
    raise ValueError(f"unsupported store URL scheme: {url.split(':', 1)[0]}")

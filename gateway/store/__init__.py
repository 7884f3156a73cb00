"""Token store: records, the :class:`Store` protocol and its backends, chosen by URL."""

from __future__ import annotations

from gateway.store.base import (
    AuditEvent,
    Change,
    Membership,
    Store,
    TokenRecord,
    User,
    Workspace,
)

__all__ = [
    "AuditEvent",
    "Change",
    "Membership",
    "Store",
    "TokenRecord",
    "User",
    "Workspace",
    "open_store",
]


def open_store(url: str) -> Store:
    """The backend for ``url`` (``sqlite:///path`` or ``postgresql://…``), not yet opened."""
    if url.startswith("sqlite://"):
        from gateway.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql://", "postgres://")):
        from gateway.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]

        store: Store = PostgresStore(url)
        return store
    raise ValueError(f"unsupported store URL scheme: {url.split(':', 1)[0]}")

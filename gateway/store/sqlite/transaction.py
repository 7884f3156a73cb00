"""The SQLite store's public transaction API (:meth:`~gateway.store.base.Store.transaction`,
``fetch``, ``fetchrow``) and the rows a write appends inside its transaction: the change-feed entry,
a token with its secret's digest, an audit event.

Features that keep their own tables (OAuth) write through this API; the store's own writes use the
same ``write_*`` functions, so both append the change feed the same way.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from gateway.store.base import TOKENS, AuditEntry, TokenRecord, Transaction
from gateway.store.dialects import SQLITE, SQLiteDialect
from gateway.store.sqlite.connection import SQLiteConnection
from gateway.store.tables import Row, insert_sql

__all__ = [
    "ConnectionQueries",
    "TransactionAPI",
    "write_audit",
    "write_change",
    "write_token",
]

_INSERT_TOKEN = insert_sql(TOKENS, SQLITE)


async def write_change(db: aiosqlite.Connection, entity: str, entity_id: str) -> None:
    """Inside a transaction on ``db``: one change-feed entry."""
    await db.execute(
        "INSERT INTO changes (entity, entity_id, at) VALUES (?, ?, ?)",
        (entity, entity_id, time.time()),
    )


async def write_token(db: aiosqlite.Connection, r: TokenRecord, token_hash: str) -> None:
    """Inside a transaction on ``db``: the token, its secret's digest, its change-feed entry."""
    await db.execute(_INSERT_TOKEN, TOKENS.encode(r, SQLITE))
    await db.execute("INSERT INTO token_secrets VALUES (?, ?, NULL)", (token_hash, r.id))
    await write_change(db, "token", r.id)


async def write_audit(db: aiosqlite.Connection, e: AuditEntry | None) -> None:
    """Inside a transaction: one audit event (nothing for ``None``)."""
    if e is None:
        return
    await db.execute(
        "INSERT INTO audit_log (at, action, actor, address, token_id, visible_prefix, "
        "workspace_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            e.at,
            e.action,
            e.actor,
            e.address,
            e.token_id,
            e.visible_prefix,
            e.workspace_id,
            e.detail,
        ),
    )


class ConnectionQueries:
    """:class:`~gateway.store.tables.Queries` on one aiosqlite connection."""

    dialect: SQLiteDialect = SQLITE

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def execute(self, sql: str, *args: Any) -> int:
        cur = await self.db.execute(sql, args)
        return cur.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.db.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self.db.execute_fetchall(sql, args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None


class OpenTransaction(ConnectionQueries):
    """:class:`~gateway.store.base.Transaction`: the writer connection inside ``_tx``."""

    async def change(self, entity: str, entity_id: str) -> None:
        await write_change(self.db, entity, entity_id)

    async def insert_token(self, record: TokenRecord, token_hash: str) -> None:
        await write_token(self.db, record, token_hash)


class TransactionAPI(SQLiteConnection):
    """The public transaction API of :class:`~gateway.store.base.Store`."""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._tx() as db:
            yield OpenTransaction(db)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._all(sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._one(sql, args)
        return row

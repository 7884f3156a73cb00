"""The PostgreSQL store's public transaction API (:meth:`~gateway.store.base.Store.transaction`,
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

import asyncpg

from gateway.store.base import TOKENS, AuditEntry, TokenRecord, Transaction
from gateway.store.dialects import POSTGRES, PostgresDialect
from gateway.store.postgres.connection import PostgresConnection
from gateway.store.tables import Row, insert_sql

__all__ = [
    "ConnectionQueries",
    "TransactionAPI",
    "write_audit",
    "write_change",
    "write_token",
]

_INSERT_TOKEN = insert_sql(TOKENS, POSTGRES)


async def write_change(conn: asyncpg.Connection, entity: str, entity_id: str) -> None:
    """Inside a transaction on ``conn``: one change-feed entry."""
    await conn.execute(
        "INSERT INTO changes (entity, entity_id, at) VALUES ($1, $2, $3)",
        entity,
        entity_id,
        time.time(),
    )


async def write_token(c: asyncpg.Connection, r: TokenRecord, token_hash: str) -> None:
    """Inside a transaction on ``c``: the token, its secret's digest, its change-feed entry."""
    await c.execute(_INSERT_TOKEN, *TOKENS.encode(r, POSTGRES))
    await c.execute("INSERT INTO token_secrets VALUES ($1, $2, NULL)", token_hash, r.id)
    await write_change(c, "token", r.id)


async def write_audit(c: asyncpg.Connection, e: AuditEntry | None) -> None:
    """Inside a transaction, before its change-feed row (which takes the ordering lock)."""
    if e is None:
        return
    await c.execute(
        "INSERT INTO audit_log (at, action, actor, address, token_id, visible_prefix, "
        "workspace_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        e.at,
        e.action,
        e.actor,
        e.address,
        e.token_id,
        e.visible_prefix,
        e.workspace_id,
        e.detail,
    )


class ConnectionQueries:
    """:class:`~gateway.store.tables.Queries` on one asyncpg connection."""

    dialect: PostgresDialect = POSTGRES

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        status: str = await self.conn.execute(sql, *args)  # "UPDATE 3", "INSERT 0 1", …
        count = status.rpartition(" ")[2]
        return int(count) if count.isdigit() else 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.conn.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self.conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self.conn.fetchrow(sql, *args)
        return row


class OpenTransaction(ConnectionQueries):
    """:class:`~gateway.store.base.Transaction`: a pooled connection inside ``_tx``."""

    async def change(self, entity: str, entity_id: str) -> None:
        await write_change(self.conn, entity, entity_id)

    async def insert_token(self, record: TokenRecord, token_hash: str) -> None:
        await write_token(self.conn, record, token_hash)


class TransactionAPI(PostgresConnection):
    """The public transaction API of :class:`~gateway.store.base.Store`."""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._tx() as conn:
            yield OpenTransaction(conn)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._all(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._one(sql, *args)
        return row

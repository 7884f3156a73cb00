"""The PostgreSQL store's connections: the asyncpg pool, its timeouts, migrations, and the one
error discipline every query runs under (:meth:`PostgresConnection._read`, ``_tx``).

Outages: every asyncpg/OS error becomes ``StoreUnavailable`` here and nowhere else. The pool opens
new connections on demand, so once the server is back the next query simply works; reads that hit a
connection the server has dropped (``pg_terminate_backend``, a failover) are retried once on a fresh
connection because a read is safe to repeat. Writes are not retried: a lost COMMIT acknowledgment
could otherwise apply a change twice.

Every other module of :mod:`gateway.store.postgres` is a subclass of :class:`PostgresConnection`
for one job, and runs its SQL only through ``_read``/``_one``/``_all`` and ``_tx``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from gateway.core.errors import StoreUnavailable
from gateway.store.dialects import POSTGRES, PostgresDialect
from gateway.store.diskfull import DiskFullLog
from gateway.store.migrations import migrations

__all__ = ["ALL_ERRORS", "PostgresConnection", "split_url"]

T = TypeVar("T")

# A migration lock id shared by every gateway on the database ("gwmigrat" in ASCII, truncated).
_MIGRATION_LOCK = 0x67776D6967726174
# Errors that mean "the server or the connection is gone", as opposed to a bad statement.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.PostgresConnectionError,
    # A connection the server killed mid-use can surface as an inconsistent protocol state
    # ("cannot switch to state …") instead of a connection error: the connection is as dead.
    asyncpg.exceptions.InternalClientError,
)
ALL_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)


def split_url(url: str) -> tuple[str, str | None]:
    """``(dsn for asyncpg, schema)``: our own ``schema=`` parameter removed from the query."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema or None


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresConnection:
    """The pool of one PostgreSQL store, opened, migrated and closed; reads and write transactions."""

    dialect: PostgresDialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        query_timeout: float = 10.0,
    ) -> None:
        self.dsn, self.schema = split_url(url)
        self.min_size, self.max_size = min_size, max_size
        self.connect_timeout = connect_timeout
        self.query_timeout = query_timeout
        self._pool: asyncpg.Pool | None = None
        self.disk = DiskFullLog("PostgreSQL")

    def _server_settings(self) -> dict[str, str]:
        # Named per schema so operators (and tests) can find this gateway's sessions.
        settings = {"application_name": f"gateway:{self.schema or 'public'}"[:63]}
        if self.schema:
            settings["search_path"] = self.schema
        return settings

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            if self.schema:
                conn = await asyncpg.connect(self.dsn, timeout=self.connect_timeout)
                try:
                    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(self.schema)}")
                finally:
                    await conn.close()
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=self.connect_timeout,
                command_timeout=self.query_timeout,
                server_settings=self._server_settings(),
                # Recycle idle connections so a long-idle one killed by a firewall is not reused.
                max_inactive_connection_lifetime=60.0,
            )
            await self._migrate()
        except ALL_ERRORS as exc:
            await self.close()
            raise StoreUnavailable(
                f"cannot open the PostgreSQL store: {exc}", reason="store_open"
            ) from exc

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=5.0)
            except ALL_ERRORS:
                # A graceful close needs the server; during an outage just drop the sockets.
                pool.terminate()

    async def _migrate(self) -> None:
        async with self._pool_or_fail().acquire() as conn, conn.transaction():
            # One gateway at a time: instances starting together must not both apply a migration.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION)"
            )
            done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, sql in migrations("postgres"):
                if version in done:
                    continue
                await conn.execute(sql)  # simple-query protocol: a whole file at once
                await conn.execute(
                    "INSERT INTO schema_migrations VALUES ($1, $2)", version, time.time()
                )

    def _pool_or_fail(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("the store is not open", reason="store_closed")
        return self._pool

    # -- the error discipline ----------------------------------------------------------------------

    async def _read(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run a read; retried once on a fresh connection when the first one was dead."""
        pool = self._pool_or_fail()
        for attempt in (1, 2):
            try:
                async with pool.acquire() as conn:
                    return await op(conn)
            except CONNECTION_ERRORS as exc:
                if attempt == 2:
                    raise StoreUnavailable(reason="store_read") from exc
            except asyncpg.PostgresError as exc:
                raise StoreUnavailable(reason="store_read") from exc
        raise AssertionError("unreachable")

    async def _one(self, sql: str, *args: Any) -> Any:
        return await self._read(lambda c: c.fetchrow(sql, *args))

    async def _all(self, sql: str, *args: Any) -> list[Any]:
        return list(await self._read(lambda c: c.fetch(sql, *args)))

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        """One write transaction; asyncpg errors become StoreUnavailable."""
        pool = self._pool_or_fail()
        try:
            async with pool.acquire() as conn, conn.transaction():
                yield conn
        except asyncpg.exceptions.DiskFullError as exc:
            self.disk.failed(str(exc))  # 53100: the server's disk (or a quota) is full
            raise StoreUnavailable(reason="store_disk_full") from exc
        except ALL_ERRORS as exc:
            raise StoreUnavailable(reason="store_write") from exc
        self.disk.wrote()

    async def ping(self) -> None:
        await self._one("SELECT 1")

"""The SQLite store's connections: the file in WAL mode, its migrations, and the one error
discipline every query runs under (the writer under ``_tx``, the reader, the inline lookup).

WAL lets the CLI (another process) write while gateways read. ``sqlite3`` errors become
``StoreUnavailable`` here, at the edge, and nowhere else.

Every other module of :mod:`gateway.store.sqlite` is a subclass of :class:`SQLiteConnection` for
one job, and runs its SQL only through ``_one``/``_all`` (or ``_read_conn``), ``_tx`` and, for
token lookups, ``_inline``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from gateway.core.errors import StoreUnavailable
from gateway.store.dialects import SQLITE, SQLiteDialect
from gateway.store.diskfull import DiskFullLog
from gateway.store.migrations import migrations

__all__ = ["SQLiteConnection"]


class SQLiteConnection:
    """The connections of one SQLite store, opened, migrated and closed; reads and transactions."""

    dialect: SQLiteDialect = SQLITE

    def __init__(self, url: str) -> None:
        path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
        self.path = path or ":memory:"
        # Two connections: transactions run one at a time on the writer (under _write_lock), and
        # reads go to the reader, which in WAL mode sees only committed data. One shared
        # connection would let concurrent requests interleave BEGINs (refused by sqlite) and let
        # a read see another request's uncommitted, possibly rolled-back, writes.
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self.disk = DiskFullLog("SQLite")
        # A third, plain sqlite3 connection for token lookups on the event loop's own thread: an
        # indexed read of a warm file costs ~45 µs of CPU, where the hand-off to aiosqlite's
        # thread and back costs ~150 µs more on a busy core (two thread switches and a wake-up
        # of the loop). It never waits for a lock (busy_timeout 0): if sqlite says busy, the
        # lookup goes to the reader thread, which may wait.
        self._inline: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=NORMAL")
            await self._db.execute("PRAGMA busy_timeout=5000")
            await self._db.execute("PRAGMA foreign_keys=ON")
            await self._migrate()
            if self.path == ":memory:":
                self._reader = self._db  # a second connection would be a second database
            else:
                self._reader = await aiosqlite.connect(self.path, isolation_level=None)
                await self._reader.execute("PRAGMA busy_timeout=5000")
                await self._reader.execute("PRAGMA query_only=ON")
                self._inline = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
                self._inline.execute("PRAGMA busy_timeout=0")
                self._inline.execute("PRAGMA query_only=ON")
        except sqlite3.Error as exc:
            await self.close()
            raise StoreUnavailable(
                f"cannot open the SQLite store {self.path}: {exc}{self._diagnose()}",
                reason="store_open",
            ) from exc

    def _diagnose(self) -> str:
        """Why a file could not be opened, when the file system can tell (sqlite only says no)."""
        if self.path == ":memory:":
            return ""
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            if os.statvfs(folder).f_flag & os.ST_RDONLY:
                return " (the file system holding it is mounted read-only)"
        except OSError as exc:
            return f" ({exc.strerror}: {folder})"
        if not os.access(folder, os.W_OK):
            return f" (its folder {folder} is not writable)"
        return ""

    async def close(self) -> None:
        inline, self._inline = self._inline, None
        if inline is not None:
            inline.close()
        reader, self._reader = self._reader, None
        if reader is not None and reader is not self._db:
            await reader.close()
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def _migrate(self) -> None:
        db = self._conn
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)"
        )
        async with db.execute("SELECT version FROM schema_migrations") as cur:
            done = {row[0] async for row in cur}
        for version, sql in migrations("sqlite"):
            if version in done:
                continue
            # BEGIN IMMEDIATE: two processes starting at once must not both apply a migration.
            await db.execute("BEGIN IMMEDIATE")
            try:
                async with db.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                ) as cur:
                    if await cur.fetchone() is None:
                        for statement in _split_sql(sql):
                            await db.execute(statement)
                        await db.execute(
                            "INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time())
                        )
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    # -- the error discipline ----------------------------------------------------------------------

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreUnavailable("the store is not open", reason="store_closed")
        return self._db

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time; sqlite errors become StoreUnavailable."""
        db = self._conn
        async with self._write_lock:
            try:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    await db.execute("ROLLBACK")
                    raise
                await db.execute("COMMIT")
            except sqlite3.Error as exc:
                if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                    self.disk.failed(str(exc))
                    raise StoreUnavailable(reason="store_disk_full") from exc
                raise StoreUnavailable(reason="store_write") from exc
            self.disk.wrote()

    @property
    def _read_conn(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreUnavailable("the store is not open", reason="store_closed")
        return self._reader

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        # Every caller's query returns at most a couple of rows. execute_fetchall is one trip to
        # aiosqlite's thread; execute + fetchone + cursor close was three (a cache miss is on the
        # request path).
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return list(await self._read_conn.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StoreUnavailable(reason="store_read") from exc

    async def ping(self) -> None:
        await self._one("SELECT 1")


def _split_sql(sql: str) -> list[str]:
    """Statements of a migration file (no semicolons inside string literals in our migrations)."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]

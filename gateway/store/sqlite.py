"""The embedded default store: one SQLite file in WAL mode through aiosqlite.

WAL lets the CLI (another process) write while gateways read. Every write that can change a decision
appends to ``changes`` in the same transaction. ``sqlite3`` errors become ``StoreUnavailable`` here,
at the edge, and nowhere else.

Over 400 lines on purpose: one class implements the whole :class:`~gateway.store.base.Store`
protocol for one backend, and its methods share one connection and error discipline (the writer
under ``_tx``, the reader, the inline lookup connection) that splitting the class would hide.
Features' tables are not here: they write through :meth:`SQLiteStore.transaction` and are copied by
:mod:`gateway.store.tables`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from gateway.core.errors import StoreUnavailable
from gateway.store.base import (
    TOKENS,
    AuditEntry,
    AuditEvent,
    Change,
    Membership,
    StoreDump,
    TokenRecord,
    Transaction,
    User,
    Workspace,
)
from gateway.store.dialects import SQLITE, SQLiteDialect, json_set
from gateway.store.diskfull import DiskFullLog
from gateway.store.migrations import migrations
from gateway.store.tables import Row, dump_tables, insert_sql, load_tables

__all__ = ["SQLiteStore"]

_TOKEN_COLUMNS = ", ".join(f"t.{c.name}" for c in TOKENS.columns)
_NOT_AFTER = len(TOKENS.columns)  # find_token's extra column, after the token's own
_FIND_TOKEN = (
    f"SELECT {_TOKEN_COLUMNS}, s.not_after FROM token_secrets s "
    "JOIN tokens t ON t.id = s.token_id WHERE s.hash = ?"
)
_INSERT_TOKEN = insert_sql(TOKENS, SQLITE)


def _token(row: Sequence[Any]) -> TokenRecord:
    # The cache-miss path: positional and memoized, where TOKENS.decode (dumps) is generic.
    return TokenRecord(
        id=row[0],
        name=row[1],
        kind=row[2],
        type_prefix=row[3],
        environment=row[4],
        visible_prefix=row[5],
        scopes=json_set(row[6]),
        workspace_id=row[7],
        user_id=row[8],
        created_at=row[9],
        expires_at=row[10],
        revoked_at=row[11],
        last_used_at=row[12],
        allowed_domains=() if row[13] == "[]" else tuple(json.loads(row[13])),
        created_by=row[14],
        client_id=row[15],
        grant_id=row[16],
    )


def _workspace(row: Sequence[Any]) -> Workspace:
    return Workspace(*row)


class _Queries:
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


class _Transaction(_Queries):
    """:class:`~gateway.store.base.Transaction`: the writer connection inside ``_tx``."""

    async def change(self, entity: str, entity_id: str) -> None:
        await SQLiteStore._change(self.db, entity, entity_id)

    async def insert_token(self, record: TokenRecord, token_hash: str) -> None:
        await SQLiteStore._insert_token(self.db, record, token_hash)


class SQLiteStore:
    """:class:`gateway.store.Store` on a SQLite file."""

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

    # -- the public transaction API (gateway.store.base.Store) -------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._tx() as db:
            yield _Transaction(db)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._all(sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._one(sql, args)
        return row

    @staticmethod
    async def _change(db: aiosqlite.Connection, entity: str, entity_id: str) -> None:
        await db.execute(
            "INSERT INTO changes (entity, entity_id, at) VALUES (?, ?, ?)",
            (entity, entity_id, time.time()),
        )

    # -- hot path ----------------------------------------------------------------------------------

    async def find_token(self, token_hash: str) -> tuple[TokenRecord, float | None] | None:
        row = None
        inline = self._inline
        try:
            if inline is None:
                raise sqlite3.OperationalError("no inline connection")
            row = inline.execute(_FIND_TOKEN, (token_hash,)).fetchone()
        except sqlite3.Error:
            # Busy (a writer holding an exclusive lock) or anything else: the reader thread,
            # which waits up to busy_timeout and turns a real failure into StoreUnavailable.
            row = await self._one(_FIND_TOKEN, (token_hash,))
        if row is None:
            return None
        return _token(row), row[_NOT_AFTER]

    async def get_workspace(self, key: str, by: str = "any") -> Workspace | None:
        cols = "id, slug, name, plan, created_at, deleted_at"
        if by == "id":
            row = await self._one(f"SELECT {cols} FROM workspaces WHERE id = ?", (key,))
        elif by == "slug":
            row = await self._one(f"SELECT {cols} FROM workspaces WHERE slug = ?", (key,))
        else:
            row = await self._one(
                f"SELECT {cols} FROM workspaces WHERE id = ? OR slug = ? ORDER BY id = ? DESC",
                (key, key, key),
            )
        return _workspace(row) if row else None

    async def get_membership(self, user_id: str, workspace_id: str) -> Membership | None:
        row = await self._one(
            "SELECT user_id, workspace_id, role, created_at FROM memberships "
            "WHERE user_id = ? AND workspace_id = ?",
            (user_id, workspace_id),
        )
        return Membership(*row) if row else None

    # -- change feed -------------------------------------------------------------------------------

    async def latest_change(self) -> int:
        row = await self._one("SELECT COALESCE(MAX(seq), 0) FROM changes")
        return int(row[0])

    async def changes_since(self, seq: int, limit: int = 1000) -> Sequence[Change]:
        rows = await self._all(
            "SELECT seq, entity, entity_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [Change(*row) for row in rows]

    # -- workspaces, users, memberships ------------------------------------------------------------

    async def create_workspace(self, ws: Workspace) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO workspaces VALUES (?, ?, ?, ?, ?, ?)",
                (ws.id, ws.slug, ws.name, ws.plan, ws.created_at, ws.deleted_at),
            )
            await self._change(db, "workspace", ws.id)

    async def delete_workspace(self, workspace_id: str, at: float) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE workspaces SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                (at, workspace_id),
            )
            if cur.rowcount:
                await self._change(db, "workspace", workspace_id)
            return bool(cur.rowcount)

    async def set_workspace_plan(self, workspace_id: str, plan: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE workspaces SET plan = ? WHERE id = ?", (plan, workspace_id)
            )
            if cur.rowcount:
                await self._change(db, "workspace", workspace_id)
            return bool(cur.rowcount)

    async def list_workspaces(self) -> Sequence[Workspace]:
        rows = await self._all(
            "SELECT id, slug, name, plan, created_at, deleted_at FROM workspaces ORDER BY created_at"
        )
        return [_workspace(r) for r in rows]

    async def create_user(self, user: User) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?)",
                (user.id, user.email, user.name, user.created_at),
            )

    async def get_user(self, key: str) -> User | None:
        row = await self._one(
            "SELECT id, email, name, created_at FROM users WHERE id = ? OR email = ?", (key, key)
        )
        return User(*row) if row else None

    async def list_users(self) -> Sequence[User]:
        rows = await self._all("SELECT id, email, name, created_at FROM users ORDER BY created_at")
        return [User(*r) for r in rows]

    async def set_membership(self, m: Membership) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO memberships VALUES (?, ?, ?, ?) "
                "ON CONFLICT (user_id, workspace_id) DO UPDATE SET role = excluded.role",
                (m.user_id, m.workspace_id, m.role, m.created_at),
            )
            await self._change(db, "membership", f"{m.user_id}:{m.workspace_id}")

    async def remove_membership(self, user_id: str, workspace_id: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "DELETE FROM memberships WHERE user_id = ? AND workspace_id = ?",
                (user_id, workspace_id),
            )
            if cur.rowcount:
                await self._change(db, "membership", f"{user_id}:{workspace_id}")
            return bool(cur.rowcount)

    async def list_memberships(
        self, *, workspace_id: str | None = None, user_id: str | None = None
    ) -> Sequence[Membership]:
        rows = await self._all(
            "SELECT user_id, workspace_id, role, created_at FROM memberships "
            "WHERE (?1 IS NULL OR workspace_id = ?1) AND (?2 IS NULL OR user_id = ?2) "
            "ORDER BY created_at",
            (workspace_id, user_id),
        )
        return [Membership(*r) for r in rows]

    # -- tokens ------------------------------------------------------------------------------------

    @classmethod
    async def _insert_token(cls, db: aiosqlite.Connection, r: TokenRecord, token_hash: str) -> None:
        """Inside a transaction on ``db``: the token, its secret's digest, its change-feed entry."""
        await db.execute(_INSERT_TOKEN, TOKENS.encode(r, SQLITE))
        await db.execute("INSERT INTO token_secrets VALUES (?, ?, NULL)", (token_hash, r.id))
        await cls._change(db, "token", r.id)

    async def create_token(
        self, record: TokenRecord, token_hash: str, audit: AuditEntry | None = None
    ) -> None:
        async with self._tx() as db:
            await self._insert_token(db, record, token_hash)
            await self._audit(db, audit)

    async def get_token(self, token_id: str) -> TokenRecord | None:
        row = await self._one(f"SELECT {_TOKEN_COLUMNS} FROM tokens t WHERE t.id = ?", (token_id,))
        return _token(row) if row else None

    async def list_tokens(
        self, *, workspace_id: str | None = None, user_id: str | None = None
    ) -> Sequence[TokenRecord]:
        rows = await self._all(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens t "
            "WHERE (?1 IS NULL OR t.workspace_id = ?1) AND (?2 IS NULL OR t.user_id = ?2) "
            "ORDER BY t.created_at, t.id",
            (workspace_id, user_id),
        )
        return [_token(r) for r in rows]

    async def revoke_token(self, token_id: str, at: float, audit: AuditEntry | None = None) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at, token_id),
            )
            if cur.rowcount:
                await self._audit(db, audit)
                await self._change(db, "token", token_id)
            return bool(cur.rowcount)

    async def rotate_token(
        self,
        token_id: str,
        new_hash: str,
        new_visible_prefix: str,
        old_not_after: float,
        audit: AuditEntry | None = None,
    ) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE tokens SET visible_prefix = ? WHERE id = ? AND revoked_at IS NULL",
                (new_visible_prefix, token_id),
            )
            if not cur.rowcount:
                return False
            # Older secrets keep the earliest cutoff they already had.
            await db.execute(
                "UPDATE token_secrets SET not_after = MIN(COALESCE(not_after, ?1), ?1) "
                "WHERE token_id = ?2",
                (old_not_after, token_id),
            )
            await db.execute("INSERT INTO token_secrets VALUES (?, ?, NULL)", (new_hash, token_id))
            await self._audit(db, audit)
            await self._change(db, "token", token_id)
            return True

    async def set_token_expiry(self, token_id: str, expires_at: float | None) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE tokens SET expires_at = ? WHERE id = ?", (expires_at, token_id)
            )
            if cur.rowcount:
                await self._change(db, "token", token_id)
            return bool(cur.rowcount)

    async def record_usage(self, last_used: Mapping[str, float]) -> None:
        if not last_used:
            return
        async with self._tx() as db:
            await db.executemany(
                "UPDATE tokens SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
                [(at, tid) for tid, at in last_used.items()],
            )

    async def allowed_domains_in_use(self) -> frozenset[str]:
        rows = await self._all(
            "SELECT DISTINCT allowed_domains FROM tokens "
            "WHERE revoked_at IS NULL AND allowed_domains != '[]'"
        )
        return frozenset(d for (raw,) in rows for d in json.loads(raw))

    async def count_tokens_by_state(self, now: float) -> Mapping[str, int]:
        row = await self._one(
            "SELECT "
            "SUM(revoked_at IS NOT NULL), "
            "SUM(revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?1), "
            "SUM(revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)) FROM tokens",
            (now,),
        )
        return {"revoked": row[0] or 0, "expired": row[1] or 0, "active": row[2] or 0}

    async def use_nonce(self, nonce: str, expires_at: float) -> bool:
        async with self._tx() as db:
            # Forget expired values first: whatever they guarded is refused by its own expiry.
            await db.execute("DELETE FROM used_nonces WHERE expires_at < ?", (time.time(),))
            cur = await db.execute(
                "INSERT INTO used_nonces VALUES (?, ?) ON CONFLICT (nonce) DO NOTHING",
                (nonce, expires_at),
            )
            return bool(cur.rowcount)

    # -- audit -------------------------------------------------------------------------------------

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
    ) -> None:
        entry = AuditEntry(
            action, at, actor, address, token_id, visible_prefix, workspace_id, detail
        )
        async with self._tx() as db:
            await self._audit(db, entry)

    @staticmethod
    async def _audit(db: aiosqlite.Connection, e: AuditEntry | None) -> None:
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

    async def list_audit(
        self, *, workspace_id: str | None = None, limit: int = 100
    ) -> Sequence[AuditEvent]:
        rows = await self._all(
            "SELECT id, at, action, actor, address, token_id, visible_prefix, workspace_id, detail "
            "FROM audit_log WHERE (?1 IS NULL OR workspace_id = ?1) ORDER BY id DESC LIMIT ?2",
            (workspace_id, limit),
        )
        return [AuditEvent(*r) for r in rows]

    # -- migration between stores ------------------------------------------------------------------

    async def export_all(self) -> StoreDump:
        # One read transaction on the reader, where the reads below run: a consistent snapshot
        # while gateways keep writing (WAL). (Not on the writer: a BEGIN there would neither
        # cover those reads nor respect the write lock.)
        db = self._read_conn
        try:
            await db.execute("BEGIN")
            try:
                return await dump_tables(_Queries(db))
            finally:
                await db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreUnavailable(reason="store_read") from exc

    async def import_all(self, dump: StoreDump) -> None:
        async with self._tx() as db:
            await load_tables(_Queries(db), dump)
            # Running gateways (if any) drop whatever they cached about the copied data.
            await self._change(db, "store", "import")


def _split_sql(sql: str) -> list[str]:
    """Statements of a migration file (no semicolons inside string literals in our migrations)."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]

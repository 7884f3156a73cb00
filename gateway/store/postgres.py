"""The shared store for many instances: PostgreSQL through an asyncpg connection pool.

Selected by ``postgresql://`` (or ``postgres://``) store URLs. A ``schema=NAME`` query parameter
puts the gateway's tables in that schema (created if missing), so several deployments, or test
runs, can share one database. Semantics match :mod:`gateway.store.sqlite` exactly; the contract
suite (tests/contract) holds both to the same assertions.

Outages: every asyncpg/OS error becomes ``StoreUnavailable`` here and nowhere else. The pool opens
new connections on demand, so once the server is back the next query simply works; reads that hit a
connection the server has dropped (``pg_terminate_backend``, a failover) are retried once on a fresh
connection because a read is safe to repeat. Writes are not retried: a lost COMMIT acknowledgment
could otherwise apply a change twice.

Propagation: :meth:`PostgresStore.listen` holds one dedicated connection that ``LISTEN``s on
``gateway_changes`` (a trigger NOTIFYs on every ``changes`` insert) and reconnects by itself.

Over 400 lines on purpose: one class implements the whole :class:`~gateway.store.base.Store`
protocol for one backend, and its methods share one connection and error discipline (``_read``,
``_tx``) that splitting the class across modules would hide. Features' tables are not here: they
write through :meth:`PostgresStore.transaction` and are copied by :mod:`gateway.store.tables`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

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
from gateway.store.dialects import POSTGRES, PostgresDialect
from gateway.store.diskfull import DiskFullLog
from gateway.store.migrations import migrations
from gateway.store.tables import Row, dump_tables, insert_sql, load_tables

__all__ = ["PostgresStore", "split_url"]

log = logging.getLogger("gateway.store.postgres")
T = TypeVar("T")

CHANNEL = "gateway_changes"
# A migration lock id shared by every gateway on the database ("gwmigrat" in ASCII, truncated).
_MIGRATION_LOCK = 0x67776D6967726174
_TOKEN_COLUMNS = ", ".join(f"t.{c.name}" for c in TOKENS.columns)
_NOT_AFTER = len(TOKENS.columns)  # find_token's extra column, after the token's own
_INSERT_TOKEN = insert_sql(TOKENS, POSTGRES)
# Errors that mean "the server or the connection is gone", as opposed to a bad statement.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
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
_ALL_ERRORS: tuple[type[BaseException], ...] = (*_CONNECTION_ERRORS, asyncpg.PostgresError)
_LISTEN_ERRORS: tuple[type[BaseException], ...] = (*_ALL_ERRORS, StoreUnavailable)


def split_url(url: str) -> tuple[str, str | None]:
    """``(dsn for asyncpg, schema)``: our own ``schema=`` parameter removed from the query."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema or None


def _token(row: Mapping[str, Any] | Sequence[Any]) -> TokenRecord:
    r = list(row.values()) if isinstance(row, Mapping) else list(row)
    return TokenRecord(
        id=r[0],
        name=r[1],
        kind=r[2],
        type_prefix=r[3],
        environment=r[4],
        visible_prefix=r[5],
        scopes=frozenset(r[6]),
        workspace_id=r[7],
        user_id=r[8],
        created_at=r[9],
        expires_at=r[10],
        revoked_at=r[11],
        last_used_at=r[12],
        allowed_domains=tuple(r[13]),
        created_by=r[14],
        client_id=r[15],
        grant_id=r[16],
    )


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Queries:
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


class _Transaction(_Queries):
    """:class:`~gateway.store.base.Transaction`: a pooled connection inside ``_tx``."""

    async def change(self, entity: str, entity_id: str) -> None:
        await PostgresStore._change(self.conn, entity, entity_id)

    async def insert_token(self, record: TokenRecord, token_hash: str) -> None:
        await PostgresStore._insert_token(self.conn, record, token_hash)


class PostgresStore:
    """:class:`gateway.store.Store` on PostgreSQL."""

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
        except _ALL_ERRORS as exc:
            await self.close()
            raise StoreUnavailable(
                f"cannot open the PostgreSQL store: {exc}", reason="store_open"
            ) from exc

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=5.0)
            except _ALL_ERRORS:
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

    async def _read(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run a read; retried once on a fresh connection when the first one was dead."""
        pool = self._pool_or_fail()
        for attempt in (1, 2):
            try:
                async with pool.acquire() as conn:
                    return await op(conn)
            except _CONNECTION_ERRORS as exc:
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
        except _ALL_ERRORS as exc:
            raise StoreUnavailable(reason="store_write") from exc
        self.disk.wrote()

    async def ping(self) -> None:
        await self._one("SELECT 1")

    # -- the public transaction API (gateway.store.base.Store) -------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._tx() as conn:
            yield _Transaction(conn)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._all(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._one(sql, *args)
        return row

    @staticmethod
    async def _change(conn: asyncpg.Connection, entity: str, entity_id: str) -> None:
        await conn.execute(
            "INSERT INTO changes (entity, entity_id, at) VALUES ($1, $2, $3)",
            entity,
            entity_id,
            time.time(),
        )

    # -- propagation -------------------------------------------------------------------------------

    async def listen(
        self, on_change: Callable[[], None], on_state: Callable[[bool], None] | None = None
    ) -> None:
        """LISTEN for change notifications until cancelled, reconnecting after every loss.

        ``on_change`` is called for each notification of this schema, and once after every
        (re)connect, because notifications sent while we were not listening are lost: the caller
        resyncs from the change sequence then. ``on_state(True/False)`` reports the connection.
        """
        backoff = 0.1
        # One line per outage, not one per failed reconnect attempt: logged when a connection
        # that was up fails, or on the first failure of all.
        logged = False
        connected = False

        def report(up: bool) -> None:
            nonlocal connected
            connected = connected or up
            if on_state is not None:
                on_state(up)

        while True:
            connected = False
            try:
                await self._listen_once(on_change, report)
            except _LISTEN_ERRORS as exc:
                if connected or not logged:
                    log.warning(
                        "change listener connection lost (%s); reconnecting", type(exc).__name__
                    )
                logged = True
            else:
                backoff = 0.1  # it was up, then went away: reconnect promptly
            if on_state is not None:
                on_state(False)
            await asyncio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, 5.0)

    async def _listen_once(
        self, on_change: Callable[[], None], on_state: Callable[[bool], None] | None
    ) -> None:
        """One listening connection, from connect until it is lost (returns) or fails (raises)."""
        lost = asyncio.Event()
        name = f"gateway-listener:{self.schema or 'public'}"[:63]
        conn = await asyncpg.connect(
            self.dsn,
            timeout=self.connect_timeout,
            server_settings={**self._server_settings(), "application_name": name},
        )
        try:
            schema = await conn.fetchval("SELECT current_schema()")

            def notified(_c: object, _pid: int, _channel: str, payload: str) -> None:
                if payload.partition(":")[0] == schema:
                    on_change()

            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(CHANNEL, notified)
            if on_state is not None:
                on_state(True)
            on_change()  # catch up on anything missed while not listening
            # A half-open TCP connection never terminates by itself: probe it now and then.
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=5.0)
                if not lost.is_set():
                    await conn.fetchval("SELECT 1", timeout=self.connect_timeout)
        finally:
            if not conn.is_closed():
                conn.terminate()

    # -- hot path ----------------------------------------------------------------------------------

    async def find_token(self, token_hash: str) -> tuple[TokenRecord, float | None] | None:
        row = await self._one(
            f"SELECT {_TOKEN_COLUMNS}, s.not_after FROM token_secrets s "
            "JOIN tokens t ON t.id = s.token_id WHERE s.hash = $1",
            token_hash,
        )
        if row is None:
            return None
        return _token(row), row[_NOT_AFTER]

    async def get_workspace(self, key: str, by: str = "any") -> Workspace | None:
        cols = "id, slug, name, plan, created_at, deleted_at"
        if by == "id":
            row = await self._one(f"SELECT {cols} FROM workspaces WHERE id = $1", key)
        elif by == "slug":
            row = await self._one(f"SELECT {cols} FROM workspaces WHERE slug = $1", key)
        else:
            row = await self._one(
                f"SELECT {cols} FROM workspaces WHERE id = $1 OR slug = $1 ORDER BY id = $1 DESC "
                "LIMIT 1",
                key,
            )
        return Workspace(*row) if row else None

    async def get_membership(self, user_id: str, workspace_id: str) -> Membership | None:
        row = await self._one(
            "SELECT user_id, workspace_id, role, created_at FROM memberships "
            "WHERE user_id = $1 AND workspace_id = $2",
            user_id,
            workspace_id,
        )
        return Membership(*row) if row else None

    # -- change feed -------------------------------------------------------------------------------

    async def latest_change(self) -> int:
        row = await self._one("SELECT COALESCE(MAX(seq), 0) FROM changes")
        return int(row[0])

    async def changes_since(self, seq: int, limit: int = 1000) -> Sequence[Change]:
        rows = await self._all(
            "SELECT seq, entity, entity_id FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
            seq,
            limit,
        )
        return [Change(*row) for row in rows]

    # -- workspaces, users, memberships ------------------------------------------------------------

    async def create_workspace(self, ws: Workspace) -> None:
        async with self._tx() as c:
            await c.execute(
                "INSERT INTO workspaces VALUES ($1, $2, $3, $4, $5, $6)",
                ws.id,
                ws.slug,
                ws.name,
                ws.plan,
                ws.created_at,
                ws.deleted_at,
            )
            await self._change(c, "workspace", ws.id)

    async def delete_workspace(self, workspace_id: str, at: float) -> bool:
        async with self._tx() as c:
            done = await c.fetchval(
                "UPDATE workspaces SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL "
                "RETURNING true",
                at,
                workspace_id,
            )
            if done:
                await self._change(c, "workspace", workspace_id)
            return bool(done)

    async def set_workspace_plan(self, workspace_id: str, plan: str) -> bool:
        async with self._tx() as c:
            done = await c.fetchval(
                "UPDATE workspaces SET plan = $1 WHERE id = $2 RETURNING true", plan, workspace_id
            )
            if done:
                await self._change(c, "workspace", workspace_id)
            return bool(done)

    async def list_workspaces(self) -> Sequence[Workspace]:
        rows = await self._all(
            "SELECT id, slug, name, plan, created_at, deleted_at FROM workspaces ORDER BY created_at"
        )
        return [Workspace(*r) for r in rows]

    async def create_user(self, user: User) -> None:
        async with self._tx() as c:
            await c.execute(
                "INSERT INTO users VALUES ($1, $2, $3, $4)",
                user.id,
                user.email,
                user.name,
                user.created_at,
            )

    async def get_user(self, key: str) -> User | None:
        row = await self._one(
            "SELECT id, email, name, created_at FROM users WHERE id = $1 OR email = $1 LIMIT 1",
            key,
        )
        return User(*row) if row else None

    async def list_users(self) -> Sequence[User]:
        rows = await self._all("SELECT id, email, name, created_at FROM users ORDER BY created_at")
        return [User(*r) for r in rows]

    async def set_membership(self, m: Membership) -> None:
        async with self._tx() as c:
            await c.execute(
                "INSERT INTO memberships VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (user_id, workspace_id) DO UPDATE SET role = excluded.role",
                m.user_id,
                m.workspace_id,
                m.role,
                m.created_at,
            )
            await self._change(c, "membership", f"{m.user_id}:{m.workspace_id}")

    async def remove_membership(self, user_id: str, workspace_id: str) -> bool:
        async with self._tx() as c:
            done = await c.fetchval(
                "DELETE FROM memberships WHERE user_id = $1 AND workspace_id = $2 RETURNING true",
                user_id,
                workspace_id,
            )
            if done:
                await self._change(c, "membership", f"{user_id}:{workspace_id}")
            return bool(done)

    async def list_memberships(
        self, *, workspace_id: str | None = None, user_id: str | None = None
    ) -> Sequence[Membership]:
        rows = await self._all(
            "SELECT user_id, workspace_id, role, created_at FROM memberships "
            "WHERE ($1::text IS NULL OR workspace_id = $1) AND ($2::text IS NULL OR user_id = $2) "
            "ORDER BY created_at",
            workspace_id,
            user_id,
        )
        return [Membership(*r) for r in rows]

    # -- tokens ------------------------------------------------------------------------------------

    @classmethod
    async def _insert_token(cls, c: asyncpg.Connection, r: TokenRecord, token_hash: str) -> None:
        """Inside a transaction on ``c``: the token, its secret's digest, its change-feed entry."""
        await c.execute(_INSERT_TOKEN, *TOKENS.encode(r, POSTGRES))
        await c.execute("INSERT INTO token_secrets VALUES ($1, $2, NULL)", token_hash, r.id)
        await cls._change(c, "token", r.id)

    async def create_token(
        self, record: TokenRecord, token_hash: str, audit: AuditEntry | None = None
    ) -> None:
        async with self._tx() as c:
            # The audit row goes before the change-feed row, which takes the ordering lock.
            await self._audit(c, audit)
            await self._insert_token(c, record, token_hash)

    async def get_token(self, token_id: str) -> TokenRecord | None:
        row = await self._one(f"SELECT {_TOKEN_COLUMNS} FROM tokens t WHERE t.id = $1", token_id)
        return _token(row) if row else None

    async def list_tokens(
        self, *, workspace_id: str | None = None, user_id: str | None = None
    ) -> Sequence[TokenRecord]:
        rows = await self._all(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens t "
            "WHERE ($1::text IS NULL OR t.workspace_id = $1) "
            "AND ($2::text IS NULL OR t.user_id = $2) ORDER BY t.created_at, t.id",
            workspace_id,
            user_id,
        )
        return [_token(r) for r in rows]

    async def revoke_token(self, token_id: str, at: float, audit: AuditEntry | None = None) -> bool:
        async with self._tx() as c:
            done = await c.fetchval(
                "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL "
                "RETURNING true",
                at,
                token_id,
            )
            if done:
                await self._audit(c, audit)
                await self._change(c, "token", token_id)
            return bool(done)

    async def rotate_token(
        self,
        token_id: str,
        new_hash: str,
        new_visible_prefix: str,
        old_not_after: float,
        audit: AuditEntry | None = None,
    ) -> bool:
        async with self._tx() as c:
            done = await c.fetchval(
                "UPDATE tokens SET visible_prefix = $1 WHERE id = $2 AND revoked_at IS NULL "
                "RETURNING true",
                new_visible_prefix,
                token_id,
            )
            if not done:
                return False
            # Older secrets keep the earliest cutoff they already had.
            await c.execute(
                "UPDATE token_secrets SET not_after = LEAST(COALESCE(not_after, $1), $1) "
                "WHERE token_id = $2",
                old_not_after,
                token_id,
            )
            await c.execute("INSERT INTO token_secrets VALUES ($1, $2, NULL)", new_hash, token_id)
            await self._audit(c, audit)
            await self._change(c, "token", token_id)
            return True

    async def set_token_expiry(self, token_id: str, expires_at: float | None) -> bool:
        async with self._tx() as c:
            done = await c.fetchval(
                "UPDATE tokens SET expires_at = $1 WHERE id = $2 RETURNING true",
                expires_at,
                token_id,
            )
            if done:
                await self._change(c, "token", token_id)
            return bool(done)

    async def record_usage(self, last_used: Mapping[str, float]) -> None:
        if not last_used:
            return
        async with self._tx() as c:
            await c.executemany(
                "UPDATE tokens SET last_used_at = GREATEST(COALESCE(last_used_at, 0), $1) "
                "WHERE id = $2",
                [(at, tid) for tid, at in last_used.items()],
            )

    async def use_nonce(self, nonce: str, expires_at: float) -> bool:
        async with self._tx() as c:
            # Forget expired values first: whatever they guarded is refused by its own expiry.
            await c.execute("DELETE FROM used_nonces WHERE expires_at < $1", time.time())
            status = await c.execute(
                "INSERT INTO used_nonces VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING",
                nonce,
                expires_at,
            )
            return bool(status == "INSERT 0 1")

    async def allowed_domains_in_use(self) -> frozenset[str]:
        rows = await self._all(
            "SELECT DISTINCT unnest(allowed_domains) FROM tokens WHERE revoked_at IS NULL"
        )
        return frozenset(r[0] for r in rows)

    async def count_tokens_by_state(self, now: float) -> Mapping[str, int]:
        row = await self._one(
            "SELECT "
            "COUNT(*) FILTER (WHERE revoked_at IS NOT NULL), "
            "COUNT(*) FILTER (WHERE revoked_at IS NULL AND expires_at IS NOT NULL "
            "  AND expires_at <= $1), "
            "COUNT(*) FILTER (WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)) "
            "FROM tokens",
            now,
        )
        return {"revoked": row[0], "expired": row[1], "active": row[2]}

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
        async with self._tx() as c:
            await self._audit(c, entry)

    @staticmethod
    async def _audit(c: asyncpg.Connection, e: AuditEntry | None) -> None:
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

    async def list_audit(
        self, *, workspace_id: str | None = None, limit: int = 100
    ) -> Sequence[AuditEvent]:
        rows = await self._all(
            "SELECT id, at, action, actor, address, token_id, visible_prefix, workspace_id, detail "
            "FROM audit_log WHERE ($1::text IS NULL OR workspace_id = $1) ORDER BY id DESC LIMIT $2",
            workspace_id,
            limit,
        )
        return [AuditEvent(*r) for r in rows]

    # -- migration between stores ------------------------------------------------------------------

    async def export_all(self) -> StoreDump:
        async def read(c: asyncpg.Connection) -> StoreDump:
            # One REPEATABLE READ snapshot, so the dump is consistent while gateways keep writing.
            async with c.transaction(isolation="repeatable_read", readonly=True):
                return await dump_tables(_Queries(c))

        return await self._read(read)

    async def import_all(self, dump: StoreDump) -> None:
        async with self._tx() as c:
            await load_tables(_Queries(c), dump)
            # Running gateways (if any) drop whatever they cached about the copied data.
            await self._change(c, "store", "import")

""":class:`~gateway.oauth.store.OAuthStore` on the SQLite store's connection (migration 0002).

It shares :class:`~gateway.store.sqlite.SQLiteStore`'s connection and transaction helper, so an
issuance or a family revocation and its change-feed entries commit together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import astuple
from typing import TYPE_CHECKING, Any

import aiosqlite

from gateway.oauth.store import ClientRecord, CodeRecord, GrantRecord, RefreshRecord
from gateway.store.base import TokenRecord

if TYPE_CHECKING:
    from gateway.store.base import StoreDump
    from gateway.store.sqlite import SQLiteStore

__all__ = ["SQLiteOAuthStore", "dump_oauth", "load_oauth"]

_CLIENT = "id, name, redirect_uris, scopes, created_at, workspace_id, secret_hash"
_GRANT = "id, client_id, user_id, workspace_id, scopes, created_at, revoked_at, revoke_reason"
_CODE = (
    "hash, grant_id, client_id, redirect_uri, code_challenge, code_challenge_method, "
    "created_at, expires_at, used_at"
)
_REFRESH = (
    "id, hash, grant_id, client_id, access_token_id, created_at, expires_at, rotated_at, "
    "replaced_by, revoked_at"
)


_INSERT_CLIENT = f"INSERT INTO oauth_clients ({_CLIENT}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_INSERT_GRANT = f"INSERT INTO oauth_grants ({_GRANT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_CODE = f"INSERT INTO oauth_codes ({_CODE}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_REFRESH = (
    f"INSERT INTO oauth_refresh_tokens ({_REFRESH}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _client(row: Sequence[Any]) -> ClientRecord:
    return ClientRecord(
        id=row[0],
        name=row[1],
        redirect_uris=tuple(json.loads(row[2])),
        scopes=frozenset(json.loads(row[3])),
        created_at=row[4],
        workspace_id=row[5],
        secret_hash=row[6],
    )


def _grant(row: Sequence[Any]) -> GrantRecord:
    return GrantRecord(
        id=row[0],
        client_id=row[1],
        user_id=row[2],
        workspace_id=row[3],
        scopes=frozenset(json.loads(row[4])),
        created_at=row[5],
        revoked_at=row[6],
        revoke_reason=row[7],
    )


class SQLiteOAuthStore:
    def __init__(self, store: SQLiteStore) -> None:
        self.s = store

    # -- clients -----------------------------------------------------------------------------------

    async def create_client(self, client: ClientRecord) -> None:
        c = client
        async with self.s._tx() as db:
            await db.execute(_INSERT_CLIENT, _client_args(c))

    async def get_client(self, client_id: str) -> ClientRecord | None:
        row = await self.s._one(f"SELECT {_CLIENT} FROM oauth_clients WHERE id = ?", (client_id,))
        return _client(row) if row else None

    async def list_clients(self, *, workspace_id: str | None = None) -> Sequence[ClientRecord]:
        rows = await self.s._all(
            f"SELECT {_CLIENT} FROM oauth_clients WHERE (?1 IS NULL OR workspace_id = ?1) "
            "ORDER BY created_at, id",
            (workspace_id,),
        )
        return [_client(r) for r in rows]

    async def delete_client(self, client_id: str, at: float) -> bool:
        async with self.s._tx() as db:
            cur = await db.execute("DELETE FROM oauth_clients WHERE id = ?", (client_id,))
            if not cur.rowcount:
                return False
            async with db.execute(
                "SELECT id FROM oauth_grants WHERE client_id = ? AND revoked_at IS NULL",
                (client_id,),
            ) as c:
                grant_ids = [r[0] for r in await c.fetchall()]
            for gid in grant_ids:
                await self._revoke_grant(db, gid, at, "client_deleted")
            return True

    # -- grants and codes --------------------------------------------------------------------------

    async def create_grant(self, grant: GrantRecord, code: CodeRecord) -> None:
        g, c = grant, code
        async with self.s._tx() as db:
            await db.execute(_INSERT_GRANT, _grant_args(g))
            await db.execute(_INSERT_CODE, astuple(c))

    async def get_grant(self, grant_id: str) -> GrantRecord | None:
        row = await self.s._one(f"SELECT {_GRANT} FROM oauth_grants WHERE id = ?", (grant_id,))
        return _grant(row) if row else None

    async def list_grants(
        self, *, user_id: str | None = None, workspace_id: str | None = None
    ) -> Sequence[GrantRecord]:
        rows = await self.s._all(
            f"SELECT {_GRANT} FROM oauth_grants "
            "WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR workspace_id = ?2) "
            "ORDER BY created_at, id",
            (user_id, workspace_id),
        )
        return [_grant(r) for r in rows]

    async def revoke_grant(self, grant_id: str, at: float, reason: str) -> bool:
        async with self.s._tx() as db:
            return await self._revoke_grant(db, grant_id, at, reason)

    async def _revoke_grant(
        self, db: aiosqlite.Connection, grant_id: str, at: float, reason: str
    ) -> bool:
        cur = await db.execute(
            "UPDATE oauth_grants SET revoked_at = ?, revoke_reason = ? "
            "WHERE id = ? AND revoked_at IS NULL",
            (at, reason, grant_id),
        )
        changed = bool(cur.rowcount)
        await db.execute(
            "UPDATE oauth_refresh_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL",
            (at, grant_id),
        )
        # Access tokens: revoked here and announced on the change feed so every cache drops them.
        async with db.execute(
            "SELECT id FROM tokens WHERE grant_id = ? AND revoked_at IS NULL", (grant_id,)
        ) as c:
            token_ids = [r[0] for r in await c.fetchall()]
        for tid in token_ids:
            await db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (at, tid))
            await self.s._change(db, "token", tid)
        return changed or bool(token_ids)

    async def consume_code(self, code_hash: str, at: float) -> tuple[CodeRecord, bool] | None:
        async with self.s._tx() as db:
            async with db.execute(
                f"SELECT {_CODE} FROM oauth_codes WHERE hash = ?", (code_hash,)
            ) as c:
                row = await c.fetchone()
            if row is None:
                return None
            first = row[8] is None
            if first:
                await db.execute(
                    "UPDATE oauth_codes SET used_at = ? WHERE hash = ?", (at, code_hash)
                )
            return CodeRecord(*row), first

    # -- refresh tokens and issuance ---------------------------------------------------------------

    async def find_refresh(self, refresh_hash: str) -> RefreshRecord | None:
        row = await self.s._one(
            f"SELECT {_REFRESH} FROM oauth_refresh_tokens WHERE hash = ?", (refresh_hash,)
        )
        return RefreshRecord(*row) if row else None

    async def get_refresh(self, refresh_id: str) -> RefreshRecord | None:
        row = await self.s._one(
            f"SELECT {_REFRESH} FROM oauth_refresh_tokens WHERE id = ?", (refresh_id,)
        )
        return RefreshRecord(*row) if row else None

    async def issue(
        self,
        *,
        grant_id: str,
        access: TokenRecord,
        access_hash: str,
        refresh: RefreshRecord,
        rotate_from: str | None = None,
        supersede: str | None = None,
        at: float,
    ) -> bool:
        async with self.s._tx() as db:
            async with db.execute(
                "SELECT 1 FROM oauth_grants WHERE id = ? AND revoked_at IS NULL", (grant_id,)
            ) as c:
                if await c.fetchone() is None:
                    return False
            if supersede is not None:
                cur = await db.execute(
                    "UPDATE oauth_refresh_tokens SET revoked_at = ? "
                    "WHERE id = ? AND rotated_at IS NULL AND revoked_at IS NULL",
                    (at, supersede),
                )
                if not cur.rowcount:
                    return False
                async with db.execute(
                    "SELECT access_token_id FROM oauth_refresh_tokens WHERE id = ?", (supersede,)
                ) as c:
                    (old_access,) = await c.fetchone() or (None,)
                if old_access is not None:
                    await db.execute(
                        "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                        (at, old_access),
                    )
                    await self.s._change(db, "token", old_access)
                await db.execute(
                    "UPDATE oauth_refresh_tokens SET replaced_by = ? WHERE id = ?",
                    (refresh.id, rotate_from),
                )
            elif rotate_from is not None:
                cur = await db.execute(
                    "UPDATE oauth_refresh_tokens SET rotated_at = ?, replaced_by = ? "
                    "WHERE id = ? AND rotated_at IS NULL AND revoked_at IS NULL",
                    (at, refresh.id, rotate_from),
                )
                if not cur.rowcount:
                    return False
            await self.s.insert_token(db, access, access_hash)
            await db.execute(_INSERT_REFRESH, astuple(refresh))
            return True


# -- migrate-store ---------------------------------------------------------------------------------


def _client_args(c: ClientRecord) -> tuple[Any, ...]:
    return (
        c.id,
        c.name,
        json.dumps(list(c.redirect_uris)),
        json.dumps(sorted(c.scopes)),
        c.created_at,
        c.workspace_id,
        c.secret_hash,
    )


def _grant_args(g: GrantRecord) -> tuple[Any, ...]:
    return (
        g.id,
        g.client_id,
        g.user_id,
        g.workspace_id,
        json.dumps(sorted(g.scopes)),
        g.created_at,
        g.revoked_at,
        g.revoke_reason,
    )


async def dump_oauth(
    store: SQLiteStore,
) -> tuple[list[ClientRecord], list[GrantRecord], list[CodeRecord], list[RefreshRecord]]:
    """Every OAuth row, read on the store's reader (inside the caller's snapshot transaction)."""
    return (
        [_client(r) for r in await store._all(f"SELECT {_CLIENT} FROM oauth_clients ORDER BY id")],
        [_grant(r) for r in await store._all(f"SELECT {_GRANT} FROM oauth_grants ORDER BY id")],
        [
            CodeRecord(*r)
            for r in await store._all(f"SELECT {_CODE} FROM oauth_codes ORDER BY hash")
        ],
        [
            RefreshRecord(*r)
            for r in await store._all(f"SELECT {_REFRESH} FROM oauth_refresh_tokens ORDER BY id")
        ],
    )


async def load_oauth(db: aiosqlite.Connection, dump: StoreDump) -> None:
    """Insert the dump's OAuth rows on ``db`` (inside the caller's import transaction)."""
    await db.executemany(_INSERT_CLIENT, [_client_args(c) for c in dump.oauth_clients])
    await db.executemany(_INSERT_GRANT, [_grant_args(g) for g in dump.oauth_grants])
    # CodeRecord and RefreshRecord fields are the table's columns, in order (dump_oauth relies on
    # the same when it builds them from rows).
    await db.executemany(_INSERT_CODE, [astuple(c) for c in dump.oauth_codes])
    await db.executemany(_INSERT_REFRESH, [astuple(r) for r in dump.oauth_refresh])

""":class:`~gateway.oauth.store.OAuthStore` on the PostgreSQL store's pool (migration 0004).

Same semantics as :mod:`gateway.oauth.sqlite`, and the contract suite
(tests/contract/test_oauth_store_contract.py) holds both to the same assertions. Each method runs in
one :meth:`~gateway.store.postgres.PostgresStore._tx` transaction, so an issuance or a family
revocation and its change-feed entries commit (and NOTIFY) together.

SQLite runs one write transaction at a time; PostgreSQL runs them concurrently at READ COMMITTED, so
the check-then-write steps take row locks where SQLite needed none:

- ``consume_code`` locks the code row (``FOR UPDATE``): two concurrent exchanges of one code see
  exactly one first use.
- ``issue`` locks the grant row (``FOR SHARE``) while it writes the tokens. ``revoke_grant``'s
  ``UPDATE`` of that row waits for the issuance to commit and then sees (and revokes) its tokens;
  an issuance that comes second waits for the revocation and then finds the grant revoked.
- Rotation and supersession are conditional ``UPDATE``s; a concurrent winner makes the loser's
  re-checked condition false, so it stores nothing.

Both lock the grant before any refresh-token row, so the two paths cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.oauth.store import ClientRecord, CodeRecord, GrantRecord, RefreshRecord
from gateway.store.base import TokenRecord

if TYPE_CHECKING:
    from gateway.store.base import StoreDump
    from gateway.store.postgres import PostgresStore

__all__ = ["PostgresOAuthStore", "dump_oauth", "load_oauth"]

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
_INSERT_CLIENT = f"INSERT INTO oauth_clients ({_CLIENT}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
_INSERT_GRANT = f"INSERT INTO oauth_grants ({_GRANT}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
_INSERT_CODE = f"INSERT INTO oauth_codes ({_CODE}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
_INSERT_REFRESH = (
    f"INSERT INTO oauth_refresh_tokens ({_REFRESH}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)


def _client(row: Sequence[Any]) -> ClientRecord:
    return ClientRecord(
        id=row[0],
        name=row[1],
        redirect_uris=tuple(row[2]),
        scopes=frozenset(row[3]),
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
        scopes=frozenset(row[4]),
        created_at=row[5],
        revoked_at=row[6],
        revoke_reason=row[7],
    )


def _code(row: Sequence[Any]) -> CodeRecord:
    return CodeRecord(*row)


def _refresh(row: Sequence[Any]) -> RefreshRecord:
    return RefreshRecord(*row)


def _client_args(c: ClientRecord) -> tuple[Any, ...]:
    return (
        c.id,
        c.name,
        list(c.redirect_uris),
        sorted(c.scopes),
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
        sorted(g.scopes),
        g.created_at,
        g.revoked_at,
        g.revoke_reason,
    )


def _code_args(c: CodeRecord) -> tuple[Any, ...]:
    return (
        c.hash,
        c.grant_id,
        c.client_id,
        c.redirect_uri,
        c.code_challenge,
        c.code_challenge_method,
        c.created_at,
        c.expires_at,
        c.used_at,
    )


def _refresh_args(r: RefreshRecord) -> tuple[Any, ...]:
    return (
        r.id,
        r.hash,
        r.grant_id,
        r.client_id,
        r.access_token_id,
        r.created_at,
        r.expires_at,
        r.rotated_at,
        r.replaced_by,
        r.revoked_at,
    )


class PostgresOAuthStore:
    def __init__(self, store: PostgresStore) -> None:
        self.s = store

    # -- clients -----------------------------------------------------------------------------------

    async def create_client(self, client: ClientRecord) -> None:
        async with self.s._tx() as c:
            await c.execute(_INSERT_CLIENT, *_client_args(client))

    async def get_client(self, client_id: str) -> ClientRecord | None:
        row = await self.s._one(f"SELECT {_CLIENT} FROM oauth_clients WHERE id = $1", client_id)
        return _client(row) if row else None

    async def list_clients(self, *, workspace_id: str | None = None) -> Sequence[ClientRecord]:
        rows = await self.s._all(
            f"SELECT {_CLIENT} FROM oauth_clients WHERE ($1::text IS NULL OR workspace_id = $1) "
            'ORDER BY created_at, id COLLATE "C"',
            workspace_id,
        )
        return [_client(r) for r in rows]

    async def delete_client(self, client_id: str, at: float) -> bool:
        async with self.s._tx() as c:
            done = await c.fetchval(
                "DELETE FROM oauth_clients WHERE id = $1 RETURNING true", client_id
            )
            if not done:
                return False
            grant_ids = [
                r[0]
                for r in await c.fetch(
                    "SELECT id FROM oauth_grants WHERE client_id = $1 AND revoked_at IS NULL",
                    client_id,
                )
            ]
            for gid in grant_ids:
                await self._revoke_grant(c, gid, at, "client_deleted")
            return True

    # -- grants and codes --------------------------------------------------------------------------

    async def create_grant(self, grant: GrantRecord, code: CodeRecord) -> None:
        async with self.s._tx() as c:
            await c.execute(_INSERT_GRANT, *_grant_args(grant))
            await c.execute(_INSERT_CODE, *_code_args(code))

    async def get_grant(self, grant_id: str) -> GrantRecord | None:
        row = await self.s._one(f"SELECT {_GRANT} FROM oauth_grants WHERE id = $1", grant_id)
        return _grant(row) if row else None

    async def list_grants(
        self, *, user_id: str | None = None, workspace_id: str | None = None
    ) -> Sequence[GrantRecord]:
        rows = await self.s._all(
            f"SELECT {_GRANT} FROM oauth_grants "
            "WHERE ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR workspace_id = $2) "
            'ORDER BY created_at, id COLLATE "C"',
            user_id,
            workspace_id,
        )
        return [_grant(r) for r in rows]

    async def revoke_grant(self, grant_id: str, at: float, reason: str) -> bool:
        async with self.s._tx() as c:
            return await self._revoke_grant(c, grant_id, at, reason)

    async def _revoke_grant(
        self, c: asyncpg.Connection, grant_id: str, at: float, reason: str
    ) -> bool:
        # This UPDATE takes the grant's row lock first: an issuance holding FOR SHARE on it
        # commits before we go on, so the token SELECT below sees the tokens it wrote.
        changed = await c.fetchval(
            "UPDATE oauth_grants SET revoked_at = $1, revoke_reason = $2 "
            "WHERE id = $3 AND revoked_at IS NULL RETURNING true",
            at,
            reason,
            grant_id,
        )
        await c.execute(
            "UPDATE oauth_refresh_tokens SET revoked_at = $1 "
            "WHERE grant_id = $2 AND revoked_at IS NULL",
            at,
            grant_id,
        )
        # Access tokens: revoked here and announced on the change feed so every cache drops them.
        token_ids = [
            r[0]
            for r in await c.fetch(
                "UPDATE tokens SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL "
                "RETURNING id",
                at,
                grant_id,
            )
        ]
        for tid in token_ids:
            await self.s._change(c, "token", tid)
        return bool(changed) or bool(token_ids)

    async def consume_code(self, code_hash: str, at: float) -> tuple[CodeRecord, bool] | None:
        async with self.s._tx() as c:
            # FOR UPDATE: a concurrent exchange of the same code waits here, then sees used_at.
            row = await c.fetchrow(
                f"SELECT {_CODE} FROM oauth_codes WHERE hash = $1 FOR UPDATE", code_hash
            )
            if row is None:
                return None
            first = row[8] is None
            if first:
                await c.execute(
                    "UPDATE oauth_codes SET used_at = $1 WHERE hash = $2", at, code_hash
                )
            return _code(row), first

    # -- refresh tokens and issuance ---------------------------------------------------------------

    async def find_refresh(self, refresh_hash: str) -> RefreshRecord | None:
        row = await self.s._one(
            f"SELECT {_REFRESH} FROM oauth_refresh_tokens WHERE hash = $1", refresh_hash
        )
        return _refresh(row) if row else None

    async def get_refresh(self, refresh_id: str) -> RefreshRecord | None:
        row = await self.s._one(
            f"SELECT {_REFRESH} FROM oauth_refresh_tokens WHERE id = $1", refresh_id
        )
        return _refresh(row) if row else None

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
        async with self.s._tx() as c:
            # FOR SHARE holds off a revocation until these tokens are committed (module docstring).
            active = await c.fetchval(
                "SELECT true FROM oauth_grants WHERE id = $1 AND revoked_at IS NULL FOR SHARE",
                grant_id,
            )
            if not active:
                return False
            if supersede is not None:
                old_access = await c.fetchval(
                    "UPDATE oauth_refresh_tokens SET revoked_at = $1 "
                    "WHERE id = $2 AND rotated_at IS NULL AND revoked_at IS NULL "
                    "RETURNING access_token_id",
                    at,
                    supersede,
                )
                if old_access is None:
                    return False
                revoked = await c.fetchval(
                    "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL "
                    "RETURNING true",
                    at,
                    old_access,
                )
                if revoked:
                    await self.s._change(c, "token", old_access)
                await c.execute(
                    "UPDATE oauth_refresh_tokens SET replaced_by = $1 WHERE id = $2",
                    refresh.id,
                    rotate_from,
                )
            elif rotate_from is not None:
                done = await c.fetchval(
                    "UPDATE oauth_refresh_tokens SET rotated_at = $1, replaced_by = $2 "
                    "WHERE id = $3 AND rotated_at IS NULL AND revoked_at IS NULL RETURNING true",
                    at,
                    refresh.id,
                    rotate_from,
                )
                if not done:
                    return False
            await self.s._insert_token(c, access)
            await c.execute(
                "INSERT INTO token_secrets VALUES ($1, $2, NULL)", access_hash, access.id
            )
            await self.s._change(c, "token", access.id)
            await c.execute(_INSERT_REFRESH, *_refresh_args(refresh))
            return True


# -- migrate-store ---------------------------------------------------------------------------------
# Ordered by the C collation (byte order), like SQLite's default, so a dump read from either backend
# compares equal to the other's (migrate-store verifies the copy that way).


async def dump_oauth(
    c: asyncpg.Connection,
) -> tuple[list[ClientRecord], list[GrantRecord], list[CodeRecord], list[RefreshRecord]]:
    """Every OAuth row, read on ``c`` (inside the caller's snapshot transaction)."""
    clients = await c.fetch(f'SELECT {_CLIENT} FROM oauth_clients ORDER BY id COLLATE "C"')
    grants = await c.fetch(f'SELECT {_GRANT} FROM oauth_grants ORDER BY id COLLATE "C"')
    codes = await c.fetch(f'SELECT {_CODE} FROM oauth_codes ORDER BY hash COLLATE "C"')
    refresh = await c.fetch(f'SELECT {_REFRESH} FROM oauth_refresh_tokens ORDER BY id COLLATE "C"')
    return (
        [_client(r) for r in clients],
        [_grant(r) for r in grants],
        [_code(r) for r in codes],
        [_refresh(r) for r in refresh],
    )


async def load_oauth(c: asyncpg.Connection, dump: StoreDump) -> None:
    """Insert the dump's OAuth rows on ``c`` (inside the caller's import transaction)."""
    await c.executemany(_INSERT_CLIENT, [_client_args(x) for x in dump.oauth_clients])
    await c.executemany(_INSERT_GRANT, [_grant_args(x) for x in dump.oauth_grants])
    await c.executemany(_INSERT_CODE, [_code_args(x) for x in dump.oauth_codes])
    await c.executemany(_INSERT_REFRESH, [_refresh_args(x) for x in dump.oauth_refresh])

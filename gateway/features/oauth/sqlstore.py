""":class:`~gateway.features.oauth.store.OAuthStore` on any core store, SQLite or PostgreSQL.

One implementation for both backends, written on the store's public API: reads through
:meth:`~gateway.store.base.Store.fetch`, every write in one
:meth:`~gateway.store.base.Store.transaction`, so an issuance or a family revocation and its
change-feed entries commit (and, on PostgreSQL, NOTIFY) together. Statements are written once with
``$N`` placeholders and plain SQL both backends accept (``CAST(… AS TEXT)``, no ``RETURNING``, which
SQLite only has since 3.35); the store's :class:`~gateway.store.tables.Dialect` supplies the rest.
The contract suite (tests/contract/test_oauth_store_contract.py) holds both backends to the same
assertions.

SQLite runs one write transaction at a time; PostgreSQL runs them concurrently at READ COMMITTED,
so the check-then-write steps take row locks there (``dialect.row_lock``, nothing on SQLite):

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
from typing import Any

from gateway.features.oauth.records import (
    CLIENTS,
    CODES,
    GRANTS,
    REFRESH_TOKENS,
    ClientRecord,
    CodeRecord,
    GrantRecord,
    RefreshRecord,
)
from gateway.store.base import Store, TokenRecord, Transaction
from gateway.store.tables import Row, TableSpec, insert_sql

__all__ = ["SQLOAuthStore"]


class SQLOAuthStore:
    """OAuth apps, grants, codes and refresh tokens in the tables of ``store``'s database."""

    def __init__(self, store: Store) -> None:
        self.s = store
        self.d = store.dialect

    def _sql(self, text: str) -> str:
        return self.d.sql(text)

    async def _insert(self, tx: Transaction, spec: TableSpec[Any], record: Any) -> None:
        await tx.execute(insert_sql(spec, self.d), *spec.encode(record, self.d))

    async def _one(self, spec: TableSpec[Any], where: str, *args: Any) -> Any:
        sql = f"SELECT {spec.select_list} FROM {spec.name} WHERE {where}"
        row = await self.s.fetchrow(self._sql(sql), *args)
        return spec.decode(row, self.d) if row else None

    def _ordered(self) -> str:
        return f"ORDER BY created_at, {self.d.text_order('id')}"

    # -- clients -----------------------------------------------------------------------------------

    async def create_client(self, client: ClientRecord) -> None:
        async with self.s.transaction() as tx:
            await self._insert(tx, CLIENTS, client)

    async def get_client(self, client_id: str) -> ClientRecord | None:
        found: ClientRecord | None = await self._one(CLIENTS, "id = $1", client_id)
        return found

    async def list_clients(self, *, workspace_id: str | None = None) -> Sequence[ClientRecord]:
        rows = await self.s.fetch(
            self._sql(
                f"SELECT {CLIENTS.select_list} FROM oauth_clients "
                f"WHERE (CAST($1 AS TEXT) IS NULL OR workspace_id = $1) {self._ordered()}"
            ),
            workspace_id,
        )
        return [CLIENTS.decode(r, self.d) for r in rows]

    async def delete_client(self, client_id: str, at: float) -> bool:
        async with self.s.transaction() as tx:
            if not await tx.execute(
                self._sql("DELETE FROM oauth_clients WHERE id = $1"), client_id
            ):
                return False
            grants = await tx.fetch(
                self._sql(
                    "SELECT id FROM oauth_grants WHERE client_id = $1 AND revoked_at IS NULL"
                ),
                client_id,
            )
            for (gid,) in grants:
                await self._revoke_grant(tx, gid, at, "client_deleted")
            return True

    # -- grants and codes --------------------------------------------------------------------------

    async def create_grant(self, grant: GrantRecord, code: CodeRecord) -> None:
        async with self.s.transaction() as tx:
            await self._insert(tx, GRANTS, grant)
            await self._insert(tx, CODES, code)

    async def get_grant(self, grant_id: str) -> GrantRecord | None:
        found: GrantRecord | None = await self._one(GRANTS, "id = $1", grant_id)
        return found

    async def list_grants(
        self, *, user_id: str | None = None, workspace_id: str | None = None
    ) -> Sequence[GrantRecord]:
        rows = await self.s.fetch(
            self._sql(
                f"SELECT {GRANTS.select_list} FROM oauth_grants "
                "WHERE (CAST($1 AS TEXT) IS NULL OR user_id = $1) "
                f"AND (CAST($2 AS TEXT) IS NULL OR workspace_id = $2) {self._ordered()}"
            ),
            user_id,
            workspace_id,
        )
        return [GRANTS.decode(r, self.d) for r in rows]

    async def revoke_grant(self, grant_id: str, at: float, reason: str) -> bool:
        async with self.s.transaction() as tx:
            return await self._revoke_grant(tx, grant_id, at, reason)

    async def _revoke_grant(self, tx: Transaction, grant_id: str, at: float, reason: str) -> bool:
        # This UPDATE takes the grant's row lock first: an issuance holding FOR SHARE on it
        # commits before we go on, so the token SELECT below sees the tokens it wrote.
        changed = await tx.execute(
            self._sql(
                "UPDATE oauth_grants SET revoked_at = $1, revoke_reason = $2 "
                "WHERE id = $3 AND revoked_at IS NULL"
            ),
            at,
            reason,
            grant_id,
        )
        await tx.execute(
            self._sql(
                "UPDATE oauth_refresh_tokens SET revoked_at = $1 "
                "WHERE grant_id = $2 AND revoked_at IS NULL"
            ),
            at,
            grant_id,
        )
        # Access tokens: revoked here and announced on the change feed so every cache drops them.
        tokens = await tx.fetch(
            self._sql("SELECT id FROM tokens WHERE grant_id = $1 AND revoked_at IS NULL"),
            grant_id,
        )
        revoked = [tid for (tid,) in tokens if await self._revoke_token(tx, tid, at)]
        return bool(changed) or bool(revoked)

    async def _revoke_token(self, tx: Transaction, token_id: str, at: float) -> bool:
        done = await tx.execute(
            self._sql("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL"),
            at,
            token_id,
        )
        if done:
            await tx.change("token", token_id)
        return bool(done)

    async def consume_code(self, code_hash: str, at: float) -> tuple[CodeRecord, bool] | None:
        async with self.s.transaction() as tx:
            # FOR UPDATE: a concurrent exchange of the same code waits here, then sees used_at.
            row: Row | None = await tx.fetchrow(
                self._sql(
                    f"SELECT {CODES.select_list} FROM oauth_codes WHERE hash = $1"
                    + self.d.row_lock("UPDATE")
                ),
                code_hash,
            )
            if row is None:
                return None
            code = CODES.decode(row, self.d)
            first = code.used_at is None
            if first:
                await tx.execute(
                    self._sql("UPDATE oauth_codes SET used_at = $1 WHERE hash = $2"), at, code_hash
                )
            return code, first

    # -- refresh tokens and issuance ---------------------------------------------------------------

    async def find_refresh(self, refresh_hash: str) -> RefreshRecord | None:
        found: RefreshRecord | None = await self._one(REFRESH_TOKENS, "hash = $1", refresh_hash)
        return found

    async def get_refresh(self, refresh_id: str) -> RefreshRecord | None:
        found: RefreshRecord | None = await self._one(REFRESH_TOKENS, "id = $1", refresh_id)
        return found

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
        async with self.s.transaction() as tx:
            # FOR SHARE holds off a revocation until these tokens are committed (module docstring).
            active = await tx.fetchrow(
                self._sql("SELECT 1 FROM oauth_grants WHERE id = $1 AND revoked_at IS NULL")
                + self.d.row_lock("SHARE"),
                grant_id,
            )
            if active is None:
                return False
            if supersede is not None:
                if not await self._supersede(tx, supersede, rotate_from, refresh.id, at):
                    return False
            elif rotate_from is not None and not await tx.execute(
                self._sql(
                    "UPDATE oauth_refresh_tokens SET rotated_at = $1, replaced_by = $2 "
                    "WHERE id = $3 AND rotated_at IS NULL AND revoked_at IS NULL"
                ),
                at,
                refresh.id,
                rotate_from,
            ):
                return False
            await self._insert(tx, REFRESH_TOKENS, refresh)
            # Last: its change-feed row takes PostgreSQL's per-schema ordering lock (0005).
            await tx.insert_token(access, access_hash)
            return True

    async def _supersede(
        self, tx: Transaction, successor: str, rotated: str | None, new_id: str, at: float
    ) -> bool:
        """A lost-response retry: the unused ``successor`` and its access token are revoked and
        ``rotated`` points at ``new_id`` instead. False when ``successor`` was used meanwhile."""
        if not await tx.execute(
            self._sql(
                "UPDATE oauth_refresh_tokens SET revoked_at = $1 "
                "WHERE id = $2 AND rotated_at IS NULL AND revoked_at IS NULL"
            ),
            at,
            successor,
        ):
            return False
        # Our UPDATE holds the row (PostgreSQL) or the database (SQLite): this reads what it set.
        row = await tx.fetchrow(
            self._sql("SELECT access_token_id FROM oauth_refresh_tokens WHERE id = $1"), successor
        )
        if row is not None:
            await self._revoke_token(tx, row[0], at)
        await tx.execute(
            self._sql("UPDATE oauth_refresh_tokens SET replaced_by = $1 WHERE id = $2"),
            new_id,
            rotated,
        )
        return True

"""The PostgreSQL store's tokens: the hot-path lookup by secret digest, and every token write.

Also the one-use nonces and the batched ``last_used_at`` writes, which belong to tokens.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.store.base import NOT_AFTER, TOKEN_COLUMNS, AuditEntry, TokenRecord
from gateway.store.postgres.connection import PostgresConnection
from gateway.store.postgres.transaction import write_audit, write_change, write_token

__all__ = ["TokenQueries"]


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


class TokenQueries(PostgresConnection):
    """Tokens, their secrets, nonces and usage of :class:`~gateway.store.base.Store`."""

    # -- hot path ----------------------------------------------------------------------------------

    async def find_token(self, token_hash: str) -> tuple[TokenRecord, float | None] | None:
        row = await self._one(
            f"SELECT {TOKEN_COLUMNS}, s.not_after FROM token_secrets s "
            "JOIN tokens t ON t.id = s.token_id WHERE s.hash = $1",
            token_hash,
        )
        if row is None:
            return None
        return _token(row), row[NOT_AFTER]

    # -- tokens ------------------------------------------------------------------------------------

    async def create_token(
        self, record: TokenRecord, token_hash: str, audit: AuditEntry | None = None
    ) -> None:
        async with self._tx() as c:
            # The audit row goes before the change-feed row, which takes the ordering lock.
            await write_audit(c, audit)
            await write_token(c, record, token_hash)

    async def get_token(self, token_id: str) -> TokenRecord | None:
        row = await self._one(f"SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.id = $1", token_id)
        return _token(row) if row else None

    async def list_tokens(
        self, *, workspace_id: str | None = None, user_id: str | None = None
    ) -> Sequence[TokenRecord]:
        rows = await self._all(
            f"SELECT {TOKEN_COLUMNS} FROM tokens t "
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
                await write_audit(c, audit)
                await write_change(c, "token", token_id)
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
            await write_audit(c, audit)
            await write_change(c, "token", token_id)
            return True

    async def set_token_expiry(self, token_id: str, expires_at: float | None) -> bool:
        async with self._tx() as c:
            done = await c.fetchval(
                "UPDATE tokens SET expires_at = $1 WHERE id = $2 RETURNING true",
                expires_at,
                token_id,
            )
            if done:
                await write_change(c, "token", token_id)
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

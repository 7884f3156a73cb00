"""The SQLite store's tokens: the hot-path lookup by secret digest, and every token write.

Also the one-use nonces and the batched ``last_used_at`` writes, which belong to tokens.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.store.base import NOT_AFTER, TOKEN_COLUMNS, AuditEntry, TokenRecord
from gateway.store.dialects import json_set
from gateway.store.sqlite.connection import SQLiteConnection
from gateway.store.sqlite.transaction import write_audit, write_change, write_token

__all__ = ["TokenQueries"]

_FIND_TOKEN = (
    f"SELECT {TOKEN_COLUMNS}, s.not_after FROM token_secrets s "
    "JOIN tokens t ON t.id = s.token_id WHERE s.hash = ?"
)


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


class TokenQueries(SQLiteConnection):
    """Tokens, their secrets, nonces and usage of :class:`~gateway.store.base.Store`."""

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
        return _token(row), row[NOT_AFTER]

    # -- tokens ------------------------------------------------------------------------------------

    async def create_token(
        self, record: TokenRecord, token_hash: str, audit: AuditEntry | None = None
    ) -> None:
        async with self._tx() as db:
            await write_token(db, record, token_hash)
            await write_audit(db, audit)

    async def get_token(self, token_id: str) -> TokenRecord | None:
        row = await self._one(f"SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.id = ?", (token_id,))
        return _token(row) if row else None

    async def list_tokens(
        self, *, workspace_id: str | None = None, user_id: str | None = None
    ) -> Sequence[TokenRecord]:
        rows = await self._all(
            f"SELECT {TOKEN_COLUMNS} FROM tokens t "
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
                await write_audit(db, audit)
                await write_change(db, "token", token_id)
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
            await write_audit(db, audit)
            await write_change(db, "token", token_id)
            return True

    async def set_token_expiry(self, token_id: str, expires_at: float | None) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE tokens SET expires_at = ? WHERE id = ?", (expires_at, token_id)
            )
            if cur.rowcount:
                await write_change(db, "token", token_id)
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

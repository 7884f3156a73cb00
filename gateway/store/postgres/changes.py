"""The PostgreSQL store's change feed reads: where the sequence is, and what changed since."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store.base import Change
from gateway.store.postgres.connection import PostgresConnection

__all__ = ["ChangeReads"]


class ChangeReads(PostgresConnection):
    """``latest_change`` and ``changes_since`` of :class:`~gateway.store.base.Store`."""

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

"""The SQLite store's change feed reads: where the sequence is, and what changed since."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store.base import Change
from gateway.store.sqlite.connection import SQLiteConnection

__all__ = ["ChangeReads"]


class ChangeReads(SQLiteConnection):
    """``latest_change`` and ``changes_since`` of :class:`~gateway.store.base.Store`."""

    async def latest_change(self) -> int:
        row = await self._one("SELECT COALESCE(MAX(seq), 0) FROM changes")
        return int(row[0])

    async def changes_since(self, seq: int, limit: int = 1000) -> Sequence[Change]:
        rows = await self._all(
            "SELECT seq, entity, entity_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [Change(*row) for row in rows]

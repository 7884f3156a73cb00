"""The SQLite store's audit log: one event written on its own, and the log read back.

Events that accompany a token write are written in that write's transaction (``write_audit``).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store.base import AuditEntry, AuditEvent
from gateway.store.sqlite.connection import SQLiteConnection
from gateway.store.sqlite.transaction import write_audit

__all__ = ["AuditQueries"]


class AuditQueries(SQLiteConnection):
    """``add_audit`` and ``list_audit`` of :class:`~gateway.store.base.Store`."""

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
            await write_audit(db, entry)

    async def list_audit(
        self, *, workspace_id: str | None = None, limit: int = 100
    ) -> Sequence[AuditEvent]:
        rows = await self._all(
            "SELECT id, at, action, actor, address, token_id, visible_prefix, workspace_id, detail "
            "FROM audit_log WHERE (?1 IS NULL OR workspace_id = ?1) ORDER BY id DESC LIMIT ?2",
            (workspace_id, limit),
        )
        return [AuditEvent(*r) for r in rows]

"""The SQLite store's workspaces, users and memberships: their lookups and their writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.store.base import Membership, User, Workspace
from gateway.store.sqlite.connection import SQLiteConnection
from gateway.store.sqlite.transaction import write_change

__all__ = ["RecordQueries"]


def _workspace(row: Sequence[Any]) -> Workspace:
    return Workspace(*row)


class RecordQueries(SQLiteConnection):
    """Workspaces, users and memberships of :class:`~gateway.store.base.Store`."""

    # -- hot path ----------------------------------------------------------------------------------

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

    # -- workspaces, users, memberships ------------------------------------------------------------

    async def create_workspace(self, ws: Workspace) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO workspaces VALUES (?, ?, ?, ?, ?, ?)",
                (ws.id, ws.slug, ws.name, ws.plan, ws.created_at, ws.deleted_at),
            )
            await write_change(db, "workspace", ws.id)

    async def delete_workspace(self, workspace_id: str, at: float) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE workspaces SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                (at, workspace_id),
            )
            if cur.rowcount:
                await write_change(db, "workspace", workspace_id)
            return bool(cur.rowcount)

    async def set_workspace_plan(self, workspace_id: str, plan: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE workspaces SET plan = ? WHERE id = ?", (plan, workspace_id)
            )
            if cur.rowcount:
                await write_change(db, "workspace", workspace_id)
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
            await write_change(db, "membership", f"{m.user_id}:{m.workspace_id}")

    async def remove_membership(self, user_id: str, workspace_id: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "DELETE FROM memberships WHERE user_id = ? AND workspace_id = ?",
                (user_id, workspace_id),
            )
            if cur.rowcount:
                await write_change(db, "membership", f"{user_id}:{workspace_id}")
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

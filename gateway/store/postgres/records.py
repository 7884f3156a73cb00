"""The PostgreSQL store's workspaces, users and memberships: their lookups and their writes."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store.base import Membership, User, Workspace
from gateway.store.postgres.connection import PostgresConnection
from gateway.store.postgres.transaction import write_change

__all__ = ["RecordQueries"]


class RecordQueries(PostgresConnection):
    """Workspaces, users and memberships of :class:`~gateway.store.base.Store`."""

    # -- hot path ----------------------------------------------------------------------------------

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
            await write_change(c, "workspace", ws.id)

    async def delete_workspace(self, workspace_id: str, at: float) -> bool:
        async with self._tx() as c:
            done = await c.fetchval(
                "UPDATE workspaces SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL "
                "RETURNING true",
                at,
                workspace_id,
            )
            if done:
                await write_change(c, "workspace", workspace_id)
            return bool(done)

    async def set_workspace_plan(self, workspace_id: str, plan: str) -> bool:
        async with self._tx() as c:
            done = await c.fetchval(
                "UPDATE workspaces SET plan = $1 WHERE id = $2 RETURNING true", plan, workspace_id
            )
            if done:
                await write_change(c, "workspace", workspace_id)
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
            await write_change(c, "membership", f"{m.user_id}:{m.workspace_id}")

    async def remove_membership(self, user_id: str, workspace_id: str) -> bool:
        async with self._tx() as c:
            done = await c.fetchval(
                "DELETE FROM memberships WHERE user_id = $1 AND workspace_id = $2 RETURNING true",
                user_id,
                workspace_id,
            )
            if done:
                await write_change(c, "membership", f"{user_id}:{workspace_id}")
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

"""The management layer's directory half: workspaces, users and memberships.

:class:`Directory` holds what every management operation needs (the store, the config, the token
hasher, the caller's :class:`~gateway.pipeline.authz.Powers`) and the lookups by id, slug or email;
:class:`gateway.management.services.Services` adds the token operations on top of it, so the CLI,
the admin API and the dashboard still call one object.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Self

from gateway.config import Config
from gateway.core import tokens
from gateway.core.errors import Conflict, InvalidArgument, NotFound
from gateway.core.identity import Identity
from gateway.features.oauth.service import OAuthService
from gateway.management.audit import Actor, audit_entry
from gateway.pipeline.authz import Powers, bound, require_covers
from gateway.pipeline.workspace import effective_scopes
from gateway.store.base import Membership, Store, User, Workspace

if TYPE_CHECKING:
    from gateway.app import Runtime

__all__ = ["USER_ID", "Directory"]

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Directory:
    """``caller`` arguments: the identity of the credential that knocked on a management door
    (computed by the pipeline's code, see :class:`gateway.pipeline.authz.Powers`). With one, what is
    created or touched is bounded by the caller's power (:mod:`gateway.pipeline.authz`); without one
    (the CLI, the operator) it is not."""

    def __init__(self, store: Store, config: Config, powers: Powers | None = None) -> None:
        self.store = store
        self.config = config
        self.hasher = tokens.TokenHasher(config.pepper)
        self.powers = powers or Powers.for_store(config, store)

    @classmethod
    def of_runtime(cls, store: Store, rt: Runtime) -> Self:
        """For a door of a running gateway: powers computed by its own workspace step and cache."""
        return cls(store, rt.config, Powers(rt.config, rt.workspaces))

    # -- workspaces --------------------------------------------------------------------------------

    def _normal_ws_key(self, key: str) -> str:
        # ObjectIds are hex: accepted in any case, stored and compared in lowercase.
        return key.lower() if self.config.workspace.id_format == "objectid" else key

    def _new_workspace_id(self) -> str:
        if self.config.workspace.id_format == "objectid":
            return secrets.token_hex(12)
        return tokens.new_id("ws_", 16)

    async def create_workspace(
        self, name: str, slug: str | None = None, id: str | None = None, plan: str = "free"
    ) -> Workspace:
        if not name.strip():
            raise InvalidArgument("name is required.", reason="name")
        if slug is None:  # given but empty is refused below, not replaced
            # From the name; a name with no ASCII letter or digit still gets a valid one.
            slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
            slug = slug or f"ws-{secrets.token_hex(4)}"
        if not _SLUG.match(slug):
            raise InvalidArgument(
                f"Invalid slug {slug!r}: lowercase letters, digits and '-'.", reason="slug"
            )
        ws_id = self._normal_ws_key(id) if id else self._new_workspace_id()
        pattern = self.config.workspace.pattern
        if (
            self.config.workspace.match == "id"
            and pattern is not None
            and not pattern.fullmatch(ws_id)
        ):
            raise InvalidArgument(
                f"Invalid workspace id {ws_id!r} for this config.", reason="ws_id"
            )
        if await self.store.get_workspace(ws_id, "id") or await self.store.get_workspace(
            slug, "slug"
        ):
            raise InvalidArgument("A workspace with that id or slug exists.", reason="ws_exists")
        ws = Workspace(id=ws_id, slug=slug, name=name, plan=plan, created_at=time.time())
        await self.store.create_workspace(ws)
        return ws

    async def workspace(self, key: str) -> Workspace:
        ws = await self.store.get_workspace(self._normal_ws_key(key), "any")
        if ws is None or ws.deleted_at is not None:
            raise NotFound(f"No workspace {key!r}.", reason="workspace")
        return ws

    async def delete_workspace(self, key: str) -> Workspace:
        ws = await self.workspace(key)
        await self.store.delete_workspace(ws.id, time.time())
        return ws

    async def set_plan(self, key: str, plan: str) -> Workspace:
        ws = await self.workspace(key)
        await self.store.set_workspace_plan(ws.id, plan)
        return replace(ws, plan=plan)

    # -- users and memberships ---------------------------------------------------------------------

    async def create_user(self, email: str, name: str | None = None, id: str | None = None) -> User:
        """A user; ``id`` may be given so session JWTs' ``sub`` (e.g. a Supabase UUID) names it."""
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise InvalidArgument(f"Invalid email {email!r}.", reason="email")
        if id is not None and not USER_ID.match(id):
            raise InvalidArgument(
                f"Invalid user id {id!r}: 1-64 letters, digits, '-' or '_'.", reason="user_id"
            )
        if await self.store.get_user(email) or (id and await self.store.get_user(id)):
            raise Conflict("A user with that email or id exists.", reason="user_exists")
        user = User(
            id=id or tokens.new_id("usr_", 16), email=email, name=name, created_at=time.time()
        )
        await self.store.create_user(user)
        return user

    async def user(self, key: str) -> User:
        u = await self.store.get_user(key) or await self.store.get_user(key.strip().lower())
        if u is None:
            raise NotFound(f"No user {key!r}.", reason="user")
        return u

    async def add_member(
        self, workspace: str, user: str, role: str, caller: Identity | None = None
    ) -> Membership:
        """Add a member or change their role. With a caller, the new role must be within the
        caller's power, and so must the member's current one (no demoting a stronger member)."""
        if role not in self.config.roles:
            raise InvalidArgument(
                f"Unknown role {role!r}; known: {', '.join(sorted(self.config.roles))}.",
                reason="role",
            )
        ws, u = await self.workspace(workspace), await self.user(user)
        if caller is not None:
            # Nobody hands out a role holding more than they do.
            bound(self.config.scopes, caller, self.config.roles[role])
            require_covers(self.config.scopes, caller, await self._member_power(u.id, ws), "member")
        m = Membership(user_id=u.id, workspace_id=ws.id, role=role, created_at=time.time())
        await self.store.set_membership(m)
        return m

    async def remove_member(
        self,
        workspace: str,
        user: str,
        actor: Actor | None = None,
        caller: Identity | None = None,
    ) -> bool:
        """Remove a member and revoke every token of theirs in the workspace (OAuth grants
        included), so adding them back later does not bring old credentials back. With a caller,
        that is revoking: the member's role and every token revoked must be within its power."""
        ws, u = await self.workspace(workspace), await self.user(user)
        if caller is not None:
            power = await self._member_power(u.id, ws)
            for t in await self.store.list_tokens(workspace_id=ws.id, user_id=u.id):
                if t.revoked_at is None:
                    power |= await self.powers.of_token(t)
            require_covers(self.config.scopes, caller, power, "member")
        removed = await self.store.remove_membership(u.id, ws.id)
        actor = actor or Actor()
        now = time.time()
        for t in await self.store.list_tokens(workspace_id=ws.id, user_id=u.id):
            if t.revoked_at is None:
                await self.store.revoke_token(
                    t.id, now, audit=audit_entry("token.revoke", t, actor, detail="member_removed")
                )
        if self.config.oauth is not None:
            oauth = OAuthService(self.store, self.config)
            for g in await oauth.active_grants(user_id=u.id, workspace_id=ws.id):
                await oauth.revoke_grant(g.id, "member_removed", actor.id)
        return removed

    async def _member_power(self, user_id: str, ws: Workspace) -> frozenset[str]:
        """What a user's current role lets them do in ``ws`` (nothing when not a member).

        Read from the store, not the auth cache: a lookup for a user about to be added must not
        leave "not a member" cached for the pipeline's next request."""
        m = await self.store.get_membership(user_id, ws.id)
        if m is None:
            return frozenset()
        return effective_scopes(
            self.config.scopes, None, self.config.roles.get(m.role, frozenset())
        )

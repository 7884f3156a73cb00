"""The management service layer: the one implementation behind the CLI, the admin API and the
self-service endpoints, so they cannot drift apart.

It validates input against the config (known scopes, roles, token types, plans), mints secrets
through :mod:`gateway.core.tokens`, writes through the store, and records an audit event for every token
create, rotate and revoke. Every management door passes the identity that asked (``caller``), and
what it creates or touches is bounded by it through :mod:`gateway.core.authz` here, in one place. Plaintext tokens leave this module only as the return value of
:meth:`Services.create_token` and :meth:`Services.rotate_token`.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.config import Config, TokenType
from gateway.core import durations, tokens
from gateway.core.authz import (
    TOKENS_READ,
    TOKENS_WRITE,
    Powers,
    authorize,
    bound,
    bound_expiry,
    covers,
    require_covers,
    require_environment,
    require_outlived,
    same_environment,
)
from gateway.core.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    PlanRequired,
    WorkspaceDenied,
)
from gateway.core.identity import Identity
from gateway.features.oauth.service import OAuthService
from gateway.pipeline.workspace import effective_scopes
from gateway.store.base import (
    AuditEntry,
    AuditEvent,
    Membership,
    Store,
    TokenRecord,
    User,
    Workspace,
)

if TYPE_CHECKING:
    from gateway.app import Runtime

__all__ = ["USER_ID", "Actor", "Services", "iso", "parse_duration", "parse_expiry"]

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DOMAIN = re.compile(
    r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d+)?$"
)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(text: str) -> float:
    seconds = durations.seconds(text)
    if seconds is None:
        raise InvalidArgument(
            f"Invalid duration {text!r}: use e.g. 30d, 12h, 45m.", reason="duration"
        )
    return seconds


def parse_expiry(expires_in: str | None, expires_at: str | None, now: float) -> float | None:
    if expires_in is not None and expires_at is not None:
        raise InvalidArgument("Give an expiry duration or a date, not both.", reason="expiry")
    if expires_in is not None:  # given but empty is an error, not "no expiry"
        return now + parse_duration(expires_in)
    if expires_at is not None:
        try:
            dt = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument(f"Invalid expiry date {expires_at!r}.", reason="expiry") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        ts = dt.timestamp()
        if ts <= now:
            raise InvalidArgument("The expiry date is in the past.", reason="expiry")
        return ts
    return None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs a management action, for the audit log."""

    id: str | None = None  # user id, token id, or "cli"
    address: str | None = None


class Services:
    """``caller`` arguments: the identity of the credential that knocked on a management door
    (computed by the pipeline's code, see :class:`gateway.core.authz.Powers`). With one, managing tokens
    needs ``tokens:read``/``tokens:write`` and everything created or touched is bounded by the
    caller's power (:mod:`gateway.core.authz`); without one (the CLI, the operator) it is not."""

    def __init__(self, store: Store, config: Config, powers: Powers | None = None) -> None:
        self.store = store
        self.config = config
        self.hasher = tokens.TokenHasher(config.pepper)
        self.powers = powers or Powers.for_store(config, store)

    @classmethod
    def of_runtime(cls, store: Store, rt: Runtime) -> Services:
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
                    t.id, now, audit=_audit("token.revoke", t, actor, detail="member_removed")
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

    # -- tokens ------------------------------------------------------------------------------------

    def token_type(self, name: str | None) -> TokenType:
        types = [t for t in self.config.token_types if t.kind != "oauth_access"]
        if name is None:
            if not types:
                raise InvalidArgument("This config defines no token types.", reason="type")
            return types[0]
        tt = self.config.token_type(name)
        if tt is None:
            known = ", ".join(t.name for t in self.config.token_types)
            raise InvalidArgument(f"Unknown token type {name!r}; known: {known}.", reason="type")
        return tt

    def grantable_scopes(self, role: str) -> frozenset[str]:
        """The scopes a member with ``role`` may put on a token: what the role holds, implied
        scopes included; every known scope (and the superuser scope) for a superuser role."""
        rules = self.config.scopes
        held = self.config.roles.get(role, frozenset())
        if rules.superuser and rules.superuser in held:
            return rules.known | held | {rules.superuser}
        return rules.expand(held)

    def check_scopes(self, scopes: list[str]) -> frozenset[str]:
        rules = self.config.scopes
        valid = rules.known | ({rules.superuser} if rules.superuser else set())
        for s in scopes:
            if rules.known and s not in valid:
                raise InvalidArgument(f"Unknown scope {s!r}.", reason="scope")
        return frozenset(scopes)

    async def create_token(
        self,
        *,
        workspace: str,
        name: str,
        scopes: list[str] | None = None,
        type: str | None = None,
        user: str | None = None,
        expires_at: float | None = None,
        allowed_domains: list[str] | None = None,
        actor: Actor | None = None,
        caller: Identity | None = None,
        certificate_key: str | None = None,
    ) -> tuple[TokenRecord, str]:
        """Mint a token; returns its record and the plaintext, which exists nowhere else.

        Its scopes are bounded (:func:`gateway.core.authz.bound`) by ``caller`` and, when the owning
        user is a member of the workspace, by that user (the CLI acting for a user); ``scopes``
        ``None`` means "what the creator holds". A type that inherits its user's permissions
        needs an owner who is a member.
        """
        actor = actor or Actor()
        name = (name or "").strip()
        if not name or len(name) > 200:
            raise InvalidArgument("name is required (at most 200 characters).", reason="name")
        ws = await self.workspace(workspace)
        tt = self.token_type(type)
        if caller is not None:
            authorize(self.config.scopes, caller, all_of=[TOKENS_WRITE])
            require_environment(caller, tt.environment)
        if tt.plans and ws.plan not in tt.plans:
            raise PlanRequired(
                f"{tt.name} tokens require the {' or '.join(sorted(tt.plans))} plan; "
                f"this workspace is on {ws.plan}.",
                reason="plan",
            )
        u = await self.user(user) if user else None
        if tt.inherit_user_permissions and u is None:
            raise InvalidArgument(f"{tt.name} tokens belong to a user: give one.", reason="user")
        owner: Identity | None = None
        if u is not None:
            try:
                owner = await self.powers.of_user(u.id, ws)
            except WorkspaceDenied:
                if tt.inherit_user_permissions:
                    raise InvalidArgument(
                        "The user is not a member of this workspace.", reason="member"
                    ) from None
        requested = None if scopes is None else self.check_scopes(scopes)
        granted: frozenset[str] | None
        if caller is not None and owner is not None and requested is None:
            # Asked for nothing: what the creator and the owner both hold.
            granted = Powers.joint(self.config.scopes, caller, owner)
        else:
            granted = requested
            for who in (caller, owner):
                if who is not None:
                    granted = bound(self.config.scopes, who, granted)
        final = granted if granted is not None else frozenset()
        if caller is not None and u is not None and owner is None and final:
            # Upstreams trust the user id the gateway sends: a token that can do anything here
            # speaks for a member of this workspace only, never for another workspace's user.
            # (A scope-less browser key's owner is a label: Velt's ownerEmail is no member.)
            raise InvalidArgument("The user is not a member of this workspace.", reason="member")
        now = time.time()
        if expires_at is not None and expires_at <= now:
            raise InvalidArgument("The expiry is in the past.", reason="expiry")
        if caller is not None:
            expires_at = bound_expiry(caller, expires_at)
        domains = self.check_domains(allowed_domains or [])
        if tt.client_certificate != (certificate_key is not None):
            raise InvalidArgument(
                f"{tt.name} credentials are "
                + ("registered for a client certificate: give its fingerprint, SAN or subject."
                   if tt.client_certificate else "minted, not registered for a certificate."),
                reason="certificate",
            )  # fmt: skip
        # A certificate credential's "secret" is its public key string (see pipeline/authn.py);
        # the certificate itself, verified in the TLS handshake, is what proves possession.
        plaintext = tt.prefix + certificate_key if certificate_key else tokens.mint(tt.prefix)
        record = TokenRecord(
            id=tokens.new_id("tok_", 16),
            name=name,
            kind=tt.kind,
            type_prefix=tt.prefix,
            environment=tt.environment,
            visible_prefix=plaintext[: tokens.VISIBLE_PREFIX_LENGTH],
            scopes=final,
            workspace_id=ws.id,
            user_id=u.id if u else None,
            created_at=now,
            expires_at=expires_at,
            allowed_domains=tuple(domains),
            created_by=actor.id,
        )
        await self.store.create_token(
            record, self.hasher(plaintext), audit=_audit("token.create", record, actor)
        )
        return record, plaintext

    @staticmethod
    def check_domains(domains: list[str]) -> list[str]:
        out = []
        for d in domains:
            d = d.strip().lower()
            if not _DOMAIN.match(d):
                raise InvalidArgument(f"Invalid domain {d!r}.", reason="domain")
            out.append(d)
        return out

    async def token(self, token_id: str) -> TokenRecord:
        t = await self.store.get_token(token_id)
        if t is None:
            raise NotFound(f"No token {token_id!r}.", reason="token")
        return t

    async def list_tokens(
        self,
        workspace: str | None = None,
        user: str | None = None,
        caller: Identity | None = None,
    ) -> list[TokenRecord]:
        """Tokens, each with the scopes it has in force now (:meth:`shown`); with a caller, only
        those whose power the caller's covers, and only with ``tokens:read``."""
        if caller is not None:
            authorize(self.config.scopes, caller, all_of=[TOKENS_READ])
        ws_id = (await self.workspace(workspace)).id if workspace else None
        user_id = (await self.user(user)).id if user else None
        out = []
        for t in await self.store.list_tokens(workspace_id=ws_id, user_id=user_id):
            shown = await self.shown(t)
            if caller is None or (
                same_environment(caller, t.environment)
                and covers(self.config.scopes, caller, shown.scopes)
            ):
                out.append(shown)
        return out

    async def shown(self, t: TokenRecord) -> TokenRecord:
        """``t`` with the scopes it has in force (a member's PAT shows the member's role, not
        ``admin:all``), so a listing shows what a token can do."""
        return replace(t, scopes=await self.powers.of_token(t))

    async def may_manage(self, caller: Identity | None, t: TokenRecord, scope: str) -> None:
        """Raise unless ``caller`` may revoke, rotate or read ``t``: ``scope`` and a power that
        covers the token's."""
        if caller is None:
            return
        authorize(self.config.scopes, caller, all_of=[scope])
        require_environment(caller, t.environment)
        require_covers(self.config.scopes, caller, await self.powers.of_token(t))

    async def revoke_token(
        self, token_id: str, actor: Actor | None = None, caller: Identity | None = None
    ) -> TokenRecord:
        t = await self.token(token_id)
        await self.may_manage(caller, t, TOKENS_WRITE)
        await self.store.revoke_token(
            t.id, time.time(), audit=_audit("token.revoke", t, actor or Actor())
        )
        return await self.token(token_id)

    async def revoke_certificate(self, fingerprint: str, actor: Actor | None = None) -> TokenRecord:
        """Revoke the credential registered for a client certificate's SHA-256 fingerprint."""
        key = "sha256:" + fingerprint.lower().replace(":", "")
        for tt in self.config.token_types:
            if tt.client_certificate:
                found = await self.store.find_token(self.hasher(tt.prefix + key))
                if found is not None:
                    return await self.revoke_token(found[0].id, actor)
        raise NotFound(f"No credential is registered for {key}.", reason="certificate")

    async def rotate_token(
        self,
        token_id: str,
        grace_seconds: float,
        actor: Actor | None = None,
        caller: Identity | None = None,
    ) -> tuple[TokenRecord, str]:
        t = await self.token(token_id)
        await self.may_manage(caller, t, TOKENS_WRITE)
        if caller is not None:
            require_outlived(caller, t.expires_at)
        if t.state(time.time()) != "active":
            raise InvalidArgument("Only an active token can be rotated.", reason="rotate_inactive")
        tt = self.config.token_type(t.type_prefix)
        if tt is not None and tt.client_certificate:
            raise InvalidArgument(
                "A certificate credential has no secret to rotate: register the new "
                "certificate and revoke the old one.",
                reason="rotate_certificate",
            )
        plaintext = tokens.mint(t.type_prefix)
        prefix = plaintext[: tokens.VISIBLE_PREFIX_LENGTH]
        ok = await self.store.rotate_token(
            t.id,
            self.hasher(plaintext),
            prefix,
            time.time() + grace_seconds,
            audit=_audit("token.rotate", t, actor or Actor(), prefix),
        )
        if not ok:
            raise InvalidArgument("Only an active token can be rotated.", reason="rotate_inactive")
        return await self.token(token_id), plaintext


def _audit(
    action: str,
    t: TokenRecord,
    actor: Actor,
    prefix: str | None = None,
    detail: str | None = None,
) -> AuditEntry:
    """The audit event the store writes in the same transaction as the change (issue 23)."""
    return AuditEntry(
        action,
        at=time.time(),
        actor=actor.id,
        address=actor.address,
        token_id=t.id,
        visible_prefix=prefix or t.visible_prefix,
        workspace_id=t.workspace_id,
        detail=detail,
    )


def token_view(t: TokenRecord, now: float | None = None) -> dict[str, object]:
    """The public JSON shape of a token (never a secret)."""
    now = time.time() if now is None else now
    return {
        "id": t.id,
        "name": t.name,
        "type": t.type_prefix,
        "kind": t.kind,
        "environment": t.environment,
        "prefix": t.visible_prefix,
        "scopes": sorted(t.scopes),
        "workspace_id": t.workspace_id,
        "user_id": t.user_id,
        "status": t.state(now),
        "created_at": iso(t.created_at),
        "expires_at": iso(t.expires_at),
        "revoked_at": iso(t.revoked_at),
        "last_used_at": iso(t.last_used_at),
        "allowed_domains": list(t.allowed_domains),
        "created_by": t.created_by,
    }


def audit_view(e: AuditEvent) -> dict[str, object]:
    """The public JSON shape of an audit event, as the CLI and the admin API list it."""
    return {
        "at": iso(e.at),
        "action": e.action,
        "actor": e.actor,
        "address": e.address,
        "token_id": e.token_id,
        "token_prefix": e.visible_prefix,
        "workspace_id": e.workspace_id,
    }

"""The management service layer: the one implementation behind the CLI, the admin API and the
self-service endpoints, so they cannot drift apart.

It validates input against the config (known scopes, roles, token types, plans), mints secrets
through :mod:`gateway.tokens`, writes through the store, and records an audit event for every token
create, rotate and revoke. Plaintext tokens leave this module only as the return value of
:meth:`Services.create_token` and :meth:`Services.rotate_token`.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from gateway import tokens
from gateway.config import Config, TokenType
from gateway.errors import InvalidArgument, NotFound, PlanRequired
from gateway.store.base import Membership, Store, TokenRecord, User, Workspace

__all__ = ["Actor", "Services", "iso", "parse_duration", "parse_expiry"]

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DOMAIN = re.compile(
    r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d+)?$"
)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(text: str) -> float:
    m = _DURATION.match(text.strip())
    if not m:
        raise InvalidArgument(
            f"Invalid duration {text!r}: use e.g. 30d, 12h, 45m.", reason="duration"
        )
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_expiry(expires_in: str | None, expires_at: str | None, now: float) -> float | None:
    if expires_in and expires_at:
        raise InvalidArgument("Give an expiry duration or a date, not both.", reason="expiry")
    if expires_in:
        return now + parse_duration(expires_in)
    if expires_at:
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
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.hasher = tokens.TokenHasher(config.pepper)

    # -- workspaces --------------------------------------------------------------------------------

    def _new_workspace_id(self) -> str:
        if self.config.workspace.id_format == "objectid":
            return secrets.token_hex(12)
        return tokens.new_id("ws_", 16)

    async def create_workspace(
        self, name: str, slug: str | None = None, id: str | None = None, plan: str = "free"
    ) -> Workspace:
        if not name.strip():
            raise InvalidArgument("name is required.", reason="name")
        slug = slug or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        if not _SLUG.match(slug):
            raise InvalidArgument(
                f"Invalid slug {slug!r}: lowercase letters, digits and '-'.", reason="slug"
            )
        ws_id = id or self._new_workspace_id()
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
        ws = await self.store.get_workspace(key, "any")
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
        if id is not None and not _USER_ID.match(id):
            raise InvalidArgument(
                f"Invalid user id {id!r}: 1-64 letters, digits, '-' or '_'.", reason="user_id"
            )
        if await self.store.get_user(email) or (id and await self.store.get_user(id)):
            raise InvalidArgument("A user with that email or id exists.", reason="user_exists")
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

    async def add_member(self, workspace: str, user: str, role: str) -> Membership:
        if role not in self.config.roles:
            raise InvalidArgument(
                f"Unknown role {role!r}; known: {', '.join(sorted(self.config.roles))}.",
                reason="role",
            )
        ws, u = await self.workspace(workspace), await self.user(user)
        m = Membership(user_id=u.id, workspace_id=ws.id, role=role, created_at=time.time())
        await self.store.set_membership(m)
        return m

    async def remove_member(self, workspace: str, user: str) -> bool:
        ws, u = await self.workspace(workspace), await self.user(user)
        return await self.store.remove_membership(u.id, ws.id)

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
        bounded_by_user: bool = False,
        certificate_key: str | None = None,
    ) -> tuple[TokenRecord, str]:
        """Mint a token; returns its record and the plaintext, which exists nowhere else.

        Tokens that inherit their user's permissions, and any token when ``bounded_by_user`` is set
        (a user minting for themselves, e.g. in the dashboard), may not carry a scope beyond what
        the user's role grants (:meth:`grantable_scopes`).
        """
        actor = actor or Actor()
        name = (name or "").strip()
        if not name or len(name) > 200:
            raise InvalidArgument("name is required (at most 200 characters).", reason="name")
        ws = await self.workspace(workspace)
        tt = self.token_type(type)
        if tt.plans and ws.plan not in tt.plans:
            raise PlanRequired(
                f"{tt.name} tokens require the {' or '.join(sorted(tt.plans))} plan; "
                f"this workspace is on {ws.plan}.",
                reason="plan",
            )
        u = await self.user(user) if user else None
        if (tt.inherit_user_permissions or bounded_by_user) and u is None:
            raise InvalidArgument(f"{tt.name} tokens belong to a user: give one.", reason="user")
        requested = self.check_scopes(list(scopes or []))
        if u is not None and (tt.inherit_user_permissions or bounded_by_user):
            m = await self.store.get_membership(u.id, ws.id)
            if m is None:
                raise InvalidArgument(
                    "The user is not a member of this workspace.", reason="member"
                )
            held = self.config.roles.get(m.role, frozenset())
            su = self.config.scopes.superuser
            if not requested:
                if not tt.inherit_user_permissions:
                    # A workspace key with no scopes could do nothing: surely a mistake.
                    raise InvalidArgument("Choose at least one scope.", reason="scopes")
                requested = frozenset({su}) if su else held
            elif not (su and su in held):
                extra = sorted(requested - self.grantable_scopes(m.role))
                if extra:
                    raise InvalidArgument(
                        f"Scopes exceed what the user holds: {', '.join(extra)}.",
                        reason="scope_exceeds",
                    )
        now = time.time()
        if expires_at is not None and expires_at <= now:
            raise InvalidArgument("The expiry is in the past.", reason="expiry")
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
            scopes=requested,
            workspace_id=ws.id,
            user_id=u.id if u else None,
            created_at=now,
            expires_at=expires_at,
            allowed_domains=tuple(domains),
            created_by=actor.id,
        )
        await self.store.create_token(record, self.hasher(plaintext))
        await self._audit("token.create", record, actor)
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
        self, workspace: str | None = None, user: str | None = None
    ) -> list[TokenRecord]:
        ws_id = (await self.workspace(workspace)).id if workspace else None
        user_id = (await self.user(user)).id if user else None
        return list(await self.store.list_tokens(workspace_id=ws_id, user_id=user_id))

    async def revoke_token(self, token_id: str, actor: Actor | None = None) -> TokenRecord:
        t = await self.token(token_id)
        if await self.store.revoke_token(t.id, time.time()):
            await self._audit("token.revoke", t, actor or Actor())
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
        self, token_id: str, grace_seconds: float, actor: Actor | None = None
    ) -> tuple[TokenRecord, str]:
        t = await self.token(token_id)
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
        ok = await self.store.rotate_token(
            t.id,
            self.hasher(plaintext),
            plaintext[: tokens.VISIBLE_PREFIX_LENGTH],
            time.time() + grace_seconds,
        )
        if not ok:
            raise InvalidArgument("Only an active token can be rotated.", reason="rotate_inactive")
        record = await self.token(token_id)
        await self._audit("token.rotate", record, actor or Actor())
        return record, plaintext

    async def _audit(self, action: str, t: TokenRecord, actor: Actor) -> None:
        await self.store.add_audit(
            action,
            at=time.time(),
            actor=actor.id,
            address=actor.address,
            token_id=t.id,
            visible_prefix=t.visible_prefix,
            workspace_id=t.workspace_id,
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

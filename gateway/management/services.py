"""The management service layer: the one implementation behind the CLI, the admin API and the
self-service endpoints, so they cannot drift apart.

:class:`Services` is that one object. Its workspace, user and membership operations are inherited
from :class:`gateway.management.directory.Directory`; this module adds the token operations. It
validates input against the config (known scopes, roles, token types, plans), mints secrets through
:mod:`gateway.core.tokens`, writes through the store, and records an audit event
(:mod:`gateway.management.audit`) for every token create, rotate and revoke. Every management door
passes the identity that asked (``caller``), and what it creates or touches is bounded by it
through :mod:`gateway.pipeline.authz` here, in one place. Plaintext tokens leave this module only as the
return value of :meth:`Services.create_token` and :meth:`Services.rotate_token`.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace

from gateway.config import TokenType
from gateway.core import tokens
from gateway.core.errors import InvalidArgument, NotFound, PlanRequired, WorkspaceDenied
from gateway.core.identity import Identity
from gateway.core.timestamps import iso
from gateway.management.audit import Actor, audit_entry
from gateway.management.directory import Directory
from gateway.pipeline.authz import (
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
from gateway.store.base import TokenRecord

__all__ = ["Services", "token_view"]

_DOMAIN = re.compile(
    r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d+)?$"
)


class Services(Directory):
    """``caller`` arguments: the identity of the credential that knocked on a management door
    (computed by the pipeline's code, see :class:`gateway.pipeline.authz.Powers`). With one, managing tokens
    needs ``tokens:read``/``tokens:write`` and everything created or touched is bounded by the
    caller's power (:mod:`gateway.pipeline.authz`); without one (the CLI, the operator) it is not."""

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

        Its scopes are bounded (:func:`gateway.pipeline.authz.bound`) by ``caller`` and, when the owning
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
            record, self.hasher(plaintext), audit=audit_entry("token.create", record, actor)
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
            t.id, time.time(), audit=audit_entry("token.revoke", t, actor or Actor())
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
            audit=audit_entry("token.rotate", t, actor or Actor(), prefix),
        )
        if not ok:
            raise InvalidArgument("Only an active token can be rotated.", reason="rotate_inactive")
        return await self.token(token_id), plaintext


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

"""The authorization server's registry: the state every OAuth decision shares
(:class:`AppRegistry`: the stores, the ``oauth:`` config, the secret hasher), the apps as an
operator manages them (register, look up, delete), a user's grants (list, revoke with the whole
token family and an audit event), and the JSON views of both.

:class:`gateway.features.oauth.service.OAuthService` builds the consent, token and introspection
decisions on top of it.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from gateway.config import Config, OAuthConfig, TokenType
from gateway.core import tokens
from gateway.core.errors import InvalidArgument, NotFound
from gateway.core.timestamps import iso
from gateway.features.oauth import redirects
from gateway.features.oauth.store import ClientRecord, GrantRecord, OAuthStore, oauth_store_for
from gateway.store.base import Store

__all__ = ["AppRegistry", "client_view", "grant_view"]

log = logging.getLogger("gateway.oauth")

# A scope is one token of the space-delimited `scope` parameter (RFC 6749 §3.3).
_SCOPE = re.compile(r"^[A-Za-z0-9_.:*-]{1,100}$")


class AppRegistry:
    """The shared state of every OAuth decision, and the apps and grants a person manages."""

    def __init__(self, store: Store, config: Config) -> None:
        if config.oauth is None:
            raise InvalidArgument("OAuth is not configured (no oauth: section).", reason="oauth")
        self.store = store
        self.oauth: OAuthStore = oauth_store_for(store)
        self.config = config
        self.cfg: OAuthConfig = config.oauth
        self.hasher = tokens.TokenHasher(config.pepper)

    @property
    def access_type(self) -> TokenType:
        tt = self.config.token_type(self.cfg.access_token_type)
        assert tt is not None  # checked at config load
        return tt

    # -- apps --------------------------------------------------------------------------------------

    async def create_client(
        self,
        name: str,
        redirect_uris: list[str],
        scopes: list[str],
        *,
        public: bool = False,
        workspace_id: str | None = None,
    ) -> tuple[ClientRecord, str | None]:
        """Register an app; returns it and its secret (None for a public client), shown once."""
        name = name.strip()
        if not name or len(name) > 100:
            raise InvalidArgument("name is required (at most 100 characters).", reason="name")
        if not redirect_uris:
            raise InvalidArgument("At least one redirect URI is required.", reason="redirect_uri")
        for uri in redirect_uris:
            problem = redirects.check_registration(uri)
            if problem:
                raise InvalidArgument(f"Redirect URI {uri!r} {problem}.", reason="redirect_uri")
        rules = self.config.scopes
        for s in scopes:
            if (rules.known and s not in rules.known) or not _SCOPE.fullmatch(s):
                raise InvalidArgument(f"Unknown scope {s!r}.", reason="scope")
        secret = None if public else "gwcs_" + secrets.token_urlsafe(32)
        client = ClientRecord(
            id=tokens.new_id("client_", 20),
            name=name,
            redirect_uris=tuple(dict.fromkeys(redirect_uris)),
            scopes=frozenset(scopes),
            created_at=time.time(),
            workspace_id=workspace_id,
            secret_hash=self.hasher(secret) if secret else None,
        )
        await self.oauth.create_client(client)
        await self.store.add_audit(
            "oauth.app.create",
            at=client.created_at,
            actor=None,
            address=None,
            token_id=None,
            visible_prefix=None,
            workspace_id=workspace_id,
            detail=f"{client.id} {client.name}",
        )
        return client, secret

    async def client(self, client_id: str) -> ClientRecord:
        c = await self.oauth.get_client(client_id)
        if c is None:
            raise NotFound(f"No OAuth app {client_id!r}.", reason="oauth_client")
        return c

    async def delete_client(self, client_id: str) -> None:
        if not await self.oauth.delete_client(client_id, time.time()):
            raise NotFound(f"No OAuth app {client_id!r}.", reason="oauth_client")

    # -- a user's grants ---------------------------------------------------------------------------

    async def active_grants(
        self, *, user_id: str | None = None, workspace_id: str | None = None
    ) -> list[GrantRecord]:
        grants = await self.oauth.list_grants(user_id=user_id, workspace_id=workspace_id)
        return [g for g in grants if g.revoked_at is None]

    async def revoke_grant(self, grant_id: str, reason: str, actor: str | None = None) -> None:
        """Revoke a grant's family and record why in the audit log (reuse is a security event)."""
        now = time.time()
        if not await self.oauth.revoke_grant(grant_id, now, reason):
            return
        grant = await self.oauth.get_grant(grant_id)
        if reason in ("code_reuse", "refresh_reuse"):
            log.warning("oauth %s: grant %s revoked with all its tokens", reason, grant_id)
        await self.store.add_audit(
            "oauth.grant.revoke",
            at=now,
            actor=actor,
            address=None,
            token_id=None,
            visible_prefix=None,
            workspace_id=grant.workspace_id if grant else None,
            detail=f"{grant_id} {reason}",
        )


def grant_view(g: GrantRecord, client: ClientRecord | None) -> dict[str, Any]:
    return {
        "id": g.id,
        "client_id": g.client_id,
        "client_name": client.name if client else None,
        "user_id": g.user_id,
        "workspace_id": g.workspace_id,
        "scopes": sorted(g.scopes),
        "created_at": iso(g.created_at),
    }


def client_view(c: ClientRecord) -> dict[str, Any]:
    return {
        "client_id": c.id,
        "name": c.name,
        "type": "confidential" if c.confidential else "public",
        "redirect_uris": list(c.redirect_uris),
        "scopes": sorted(c.scopes),
        "workspace_id": c.workspace_id,
        "created_at": iso(c.created_at),
    }

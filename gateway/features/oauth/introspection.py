"""Revocation (RFC 7009) and introspection (RFC 7662) of a client's own access and refresh tokens:
a token is shape-checked offline before any lookup, and a foreign or unknown one is a silent no-op
or ``{"active": false}``.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.core import tokens
from gateway.features.oauth.apps import AppRegistry
from gateway.features.oauth.store import ClientRecord, RefreshRecord
from gateway.store.base import TokenRecord

__all__ = ["Introspection"]


class Introspection(AppRegistry):
    """Revocation and introspection of a client's own tokens."""

    async def _lookup(
        self, client: ClientRecord, token: str
    ) -> tuple[TokenRecord | None, RefreshRecord | None]:
        """The client's own access or refresh token for ``token`` (shape-checked offline first)."""
        for prefix, kind in (
            (self.access_type.prefix, "access"),
            (self.cfg.refresh_prefix, "refresh"),
        ):
            try:
                tokens.parse(token, prefix)
            except tokens.TokenShapeError:
                continue
            digest = self.hasher(token)
            if kind == "access":
                found = await self.store.find_token(digest)
                if found and found[0].kind == "oauth_access" and found[0].client_id == client.id:
                    return found[0], None
            else:
                rec = await self.oauth.find_refresh(digest)
                if rec is not None and rec.client_id == client.id:
                    return None, rec
        return None, None

    async def revoke(self, client: ClientRecord, token: str) -> None:
        """RFC 7009: revoke if it is the client's; unknown or foreign tokens are a silent no-op."""
        access, refresh = await self._lookup(client, token)
        now = time.time()
        if access is not None:
            await self.store.revoke_token(access.id, now)
        elif refresh is not None:
            # Revoking a refresh token ends the whole authorization (RFC 7009 §2.1).
            await self.revoke_grant(refresh.grant_id, "revoked_by_client", client.id)

    async def introspect(self, client: ClientRecord, token: str) -> dict[str, Any]:
        """RFC 7662; anything not active is exactly ``{"active": false}``."""
        access, refresh = await self._lookup(client, token)
        now = time.time()
        if access is not None and access.state(now) == "active":
            return {
                "active": True,
                "token_type": "Bearer",
                "scope": " ".join(sorted(access.scopes)),
                "client_id": client.id,
                "sub": access.user_id,
                "exp": int(access.expires_at or 0),
                "iat": int(access.created_at),
                "workspace_id": access.workspace_id,
            }
        if refresh is not None and refresh.rotated_at is None and refresh.revoked_at is None:
            grant = await self.oauth.get_grant(refresh.grant_id)
            if grant is not None and grant.revoked_at is None and refresh.expires_at > now:
                return {
                    "active": True,
                    "token_type": "refresh_token",
                    "scope": " ".join(sorted(grant.scopes)),
                    "client_id": client.id,
                    "sub": grant.user_id,
                    "exp": int(refresh.expires_at),
                    "iat": int(refresh.created_at),
                    "workspace_id": grant.workspace_id,
                }
        return {"active": False}

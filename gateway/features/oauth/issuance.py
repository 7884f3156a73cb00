"""The token endpoint (RFC 6749 §3.2): client authentication (§2.3), the authorization-code grant
with PKCE, and the refresh grant with rotation, a grace period for a lost response, and reuse
detection that ends the whole grant. Plaintext tokens exist only in the returned answer.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from gateway.core import tokens
from gateway.core.errors import InvalidClient, OAuthError
from gateway.features.oauth import pkce
from gateway.features.oauth.apps import AppRegistry
from gateway.features.oauth.params import param, required
from gateway.features.oauth.store import ClientRecord, GrantRecord, RefreshRecord
from gateway.store.base import TokenRecord

__all__ = ["TokenIssuance"]


class TokenIssuance(AppRegistry):
    """Client authentication and the token endpoint's grants."""

    async def authenticate_client(
        self, params: Mapping[str, Any], basic: tuple[str, str] | None
    ) -> ClientRecord:
        """RFC 6749 §2.3: HTTP Basic or client_secret in the body; public clients send only an id."""
        body_id, body_secret = param(params, "client_id"), param(params, "client_secret")
        client_id: str | None
        secret: str | None
        if basic is not None:
            if body_secret is not None:
                raise OAuthError("invalid_request", "Use one client authentication method.")
            if body_id is not None and body_id != basic[0]:
                raise InvalidClient("client_id does not match.", basic=True)
            client_id, secret = basic
        else:
            client_id, secret = body_id, body_secret
        client = await self.oauth.get_client(client_id) if client_id else None
        tried_basic = basic is not None
        if client is None:
            raise InvalidClient("Client authentication failed.", basic=tried_basic)
        if client.secret_hash is None:
            if secret:
                raise InvalidClient("This is a public client: send no secret.", basic=tried_basic)
            return client
        if not secret or not secrets.compare_digest(self.hasher(secret), client.secret_hash):
            raise InvalidClient("Client authentication failed.", basic=tried_basic)
        return client

    # -- token endpoint ----------------------------------------------------------------------------

    async def token(self, client: ClientRecord, params: Mapping[str, Any]) -> dict[str, Any]:
        grant_type = required(params, "grant_type")
        if grant_type == "authorization_code":
            return await self._code_grant(client, params)
        if grant_type == "refresh_token":
            return await self._refresh_grant(client, params)
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type} is not supported.")

    async def _code_grant(self, client: ClientRecord, params: Mapping[str, Any]) -> dict[str, Any]:
        code = required(params, "code")
        redirect_uri = required(params, "redirect_uri")
        verifier = required(params, "code_verifier")
        now = time.time()
        found = await self.oauth.consume_code(self.hasher(code), now)
        if found is None:
            raise OAuthError("invalid_grant", "The authorization code is invalid.")
        rec, first_use = found
        if not first_use:
            # RFC 6749 §4.1.2: a code used twice means it leaked; revoke what it produced.
            await self.revoke_grant(rec.grant_id, "code_reuse", rec.client_id)
            raise OAuthError("invalid_grant", "The authorization code was already used.")
        # From here on the code is spent, whatever the outcome (no verifier guessing).
        if rec.client_id != client.id:
            raise OAuthError("invalid_grant", "The code was issued to another client.")
        if rec.expires_at <= now:
            raise OAuthError("invalid_grant", "The authorization code has expired.")
        if redirect_uri != rec.redirect_uri:
            raise OAuthError(
                "invalid_grant", "redirect_uri differs from the authorization request."
            )
        if rec.code_challenge_method != "S256" or not pkce.verify(verifier, rec.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge.")
        grant = await self.oauth.get_grant(rec.grant_id)
        if grant is None or grant.revoked_at is not None:
            raise OAuthError("invalid_grant", "The authorization was revoked.")
        return await self._issue(client, grant, grant.scopes, now)

    async def _refresh_grant(
        self, client: ClientRecord, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        presented = required(params, "refresh_token")
        now = time.time()
        try:
            tokens.parse(presented, self.cfg.refresh_prefix)  # garbage never costs a lookup
        except tokens.TokenShapeError:
            raise OAuthError("invalid_grant", "The refresh token is invalid.") from None
        rec = await self.oauth.find_refresh(self.hasher(presented))
        if rec is None or rec.client_id != client.id:
            raise OAuthError("invalid_grant", "The refresh token is invalid.")
        grant = await self.oauth.get_grant(rec.grant_id)
        if grant is None or grant.revoked_at is not None:
            raise OAuthError("invalid_grant", "The authorization was revoked.")
        scope = param(params, "scope")
        scopes = grant.scopes
        if scope:
            scopes = frozenset(scope.split())
            if not scopes <= grant.scopes:
                raise OAuthError("invalid_scope", "scope exceeds what was granted.")
        for _ in range(2):  # a lost race re-reads the token once and decides again
            if rec.expires_at <= now:
                raise OAuthError("invalid_grant", "The refresh token has expired.")
            if rec.rotated_at is None and rec.revoked_at is None:
                result = await self._issue(client, grant, scopes, now, rotate_from=rec.id)
                if result:
                    return result
            elif (
                rec.rotated_at is not None and now - rec.rotated_at <= self.cfg.refresh_reuse_grace
            ):
                successor = await self.oauth.get_refresh(rec.replaced_by or "")
                if (
                    successor is not None
                    and successor.rotated_at is None
                    and successor.revoked_at is None
                ):
                    # A retry whose response was lost: the unused successor is replaced.
                    result = await self._issue(
                        client, grant, scopes, now, rotate_from=rec.id, supersede=successor.id
                    )
                    if result:
                        return result
            else:
                break
            fresh = await self.oauth.get_refresh(rec.id)
            if fresh is None:
                break
            rec = fresh
        # A rotated (or superseded) refresh token presented again: it leaked. Kill the family.
        await self.revoke_grant(grant.id, "refresh_reuse", client.id)
        raise OAuthError("invalid_grant", "The refresh token was already used.")

    async def _issue(
        self,
        client: ClientRecord,
        grant: GrantRecord,
        scopes: frozenset[str],
        now: float,
        *,
        rotate_from: str | None = None,
        supersede: str | None = None,
    ) -> dict[str, Any]:
        tt = self.access_type
        access_plain = tokens.mint(tt.prefix)
        refresh_plain = tokens.mint(self.cfg.refresh_prefix)
        access = TokenRecord(
            id=tokens.new_id("tok_", 16),
            name=f"OAuth: {client.name}"[:200],
            kind="oauth_access",
            type_prefix=tt.prefix,
            environment=tt.environment,
            visible_prefix=access_plain[: tokens.VISIBLE_PREFIX_LENGTH],
            scopes=scopes,
            workspace_id=grant.workspace_id,
            user_id=grant.user_id,
            created_at=now,
            expires_at=now + self.cfg.access_token_ttl,
            created_by=client.id,
            client_id=client.id,
            grant_id=grant.id,
        )
        refresh = RefreshRecord(
            id=tokens.new_id("ort_", 16),
            hash=self.hasher(refresh_plain),
            grant_id=grant.id,
            client_id=client.id,
            access_token_id=access.id,
            created_at=now,
            expires_at=now + self.cfg.refresh_token_ttl,
        )
        ok = await self.oauth.issue(
            grant_id=grant.id,
            access=access,
            access_hash=self.hasher(access_plain),
            refresh=refresh,
            rotate_from=rotate_from,
            supersede=supersede,
            at=now,
        )
        if not ok:
            if rotate_from is None:
                raise OAuthError("invalid_grant", "The authorization was revoked.")
            return {}
        return {
            "access_token": access_plain,
            "token_type": "Bearer",
            "expires_in": int(self.cfg.access_token_ttl),
            "refresh_token": refresh_plain,
            "scope": " ".join(sorted(scopes)),
        }

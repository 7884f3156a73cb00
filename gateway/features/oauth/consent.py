"""The authorization request (RFC 6749 §4.1.1 with PKCE, RFC 7636): checking the client and its
redirect URI, then the rest of the request, the scopes a user's role lets them grant, and the
approval that records the grant and returns a single-use code. Independent of HTTP; the consent
page is :mod:`gateway.features.oauth.consentpage`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core import tokens
from gateway.core.errors import OAuthError
from gateway.features.oauth import pkce, redirects
from gateway.features.oauth.apps import AppRegistry
from gateway.features.oauth.params import param
from gateway.features.oauth.store import ClientRecord, CodeRecord, GrantRecord

__all__ = ["AuthorizeRequest", "Consent"]


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    client: ClientRecord
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str
    code_challenge_method: str


class Consent(AppRegistry):
    """The authorization request's checks and the consent that turns it into a grant and a code."""

    async def check_client_and_redirect(
        self, params: Mapping[str, Any]
    ) -> tuple[ClientRecord, str]:
        """Checked before anything else: errors here are shown to the user, never redirected."""
        client_id = param(params, "client_id")
        client = await self.oauth.get_client(client_id) if client_id else None
        if client is None:
            raise OAuthError("invalid_client", "Unknown or missing client_id.")
        redirect_uri = param(params, "redirect_uri")
        if not redirect_uri or not redirects.matches(client.redirect_uris, redirect_uri):
            raise OAuthError(
                "invalid_request", "redirect_uri is missing or not registered for this app."
            )
        return client, redirect_uri

    def check_authorize(
        self, client: ClientRecord, redirect_uri: str, params: Mapping[str, Any]
    ) -> AuthorizeRequest:
        """The rest of the request; these errors go back to the (verified) redirect URI."""
        if param(params, "response_type") != "code":
            raise OAuthError("unsupported_response_type", "response_type must be code.")
        challenge = param(params, "code_challenge")
        method = param(params, "code_challenge_method")
        if not challenge:
            raise OAuthError("invalid_request", "PKCE is required: send code_challenge (S256).")
        if method != "S256":
            # A missing method means "plain" (RFC 7636 §4.3): refused like plain itself.
            raise OAuthError("invalid_request", "code_challenge_method must be S256.")
        if not pkce.valid_challenge(challenge):
            raise OAuthError("invalid_request", "code_challenge is not a base64url SHA-256 digest.")
        scopes = self.requested_scopes(client, param(params, "scope"))
        return AuthorizeRequest(
            client, redirect_uri, scopes, param(params, "state"), challenge, method
        )

    def requested_scopes(self, client: ClientRecord, scope: str | None) -> tuple[str, ...]:
        wanted = tuple(dict.fromkeys(scope.split())) if scope else tuple(sorted(client.scopes))
        if not wanted:
            raise OAuthError("invalid_scope", "No scope was requested and the app has none.")
        known = self.config.scopes.known
        for s in wanted:
            if (client.scopes and s not in client.scopes) or (known and s not in known):
                raise OAuthError("invalid_scope", f"The app may not request {s}.")
        return wanted

    def grantable(self, requested: tuple[str, ...], role: str) -> frozenset[str]:
        """The requested scopes the user's role holds: a grant never exceeds its user."""
        rules = self.config.scopes
        held = rules.expand(self.config.roles.get(role, frozenset()))
        if rules.superuser and rules.superuser in held:
            return frozenset(requested)
        return frozenset(s for s in requested if s in held)

    async def approve(
        self, req: AuthorizeRequest, user_id: str, workspace_id: str, role: str
    ) -> tuple[str, GrantRecord]:
        """Record the consent and return a fresh single-use code for it."""
        now = time.time()
        grant = GrantRecord(
            id=tokens.new_id("grant_", 16),
            client_id=req.client.id,
            user_id=user_id,
            workspace_id=workspace_id,
            scopes=self.grantable(req.scopes, role),
            created_at=now,
        )
        code = secrets.token_urlsafe(32)
        await self.oauth.create_grant(
            grant,
            CodeRecord(
                hash=self.hasher(code),
                grant_id=grant.id,
                client_id=req.client.id,
                redirect_uri=req.redirect_uri,
                code_challenge=req.code_challenge,
                code_challenge_method=req.code_challenge_method,
                created_at=now,
                expires_at=now + self.cfg.code_ttl,
            ),
        )
        return code, grant

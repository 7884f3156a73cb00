"""Every decision of the authorization server, independent of HTTP: app registration, the consent
checks, codes, the token endpoint's grants with refresh rotation, revocation and introspection.

Errors are :class:`~gateway.core.errors.OAuthError` with RFC 6749 §5.2 codes, rendered by
:mod:`gateway.edge.responses` like every other error. Plaintext
client secrets, codes and tokens exist only in return values; the store gets their digests.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config import Config, OAuthConfig, TokenType
from gateway.core import tokens
from gateway.core.errors import InvalidArgument, InvalidClient, NotFound, OAuthError
from gateway.features.oauth import pkce, redirects
from gateway.features.oauth.store import (
    ClientRecord,
    CodeRecord,
    GrantRecord,
    OAuthStore,
    RefreshRecord,
    oauth_store_for,
)
from gateway.store.base import Store, TokenRecord

__all__ = ["AuthorizeRequest", "OAuthError", "OAuthService", "client_view", "grant_view"]

log = logging.getLogger("gateway.oauth")

# A scope is one token of the space-delimited `scope` parameter (RFC 6749 §3.3).
_SCOPE = re.compile(r"^[A-Za-z0-9_.:*-]{1,100}$")


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    client: ClientRecord
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str
    code_challenge_method: str


def _param(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise OAuthError("invalid_request", f"{key} must be a string.")
    return value


def _required(params: Mapping[str, Any], key: str) -> str:
    value = _param(params, key)
    if not value:
        raise OAuthError("invalid_request", f"{key} is required.")
    return value


class OAuthService:
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

    # -- authorization request (consent) -----------------------------------------------------------

    async def check_client_and_redirect(
        self, params: Mapping[str, Any]
    ) -> tuple[ClientRecord, str]:
        """Checked before anything else: errors here are shown to the user, never redirected."""
        client_id = _param(params, "client_id")
        client = await self.oauth.get_client(client_id) if client_id else None
        if client is None:
            raise OAuthError("invalid_client", "Unknown or missing client_id.")
        redirect_uri = _param(params, "redirect_uri")
        if not redirect_uri or not redirects.matches(client.redirect_uris, redirect_uri):
            raise OAuthError(
                "invalid_request", "redirect_uri is missing or not registered for this app."
            )
        return client, redirect_uri

    def check_authorize(
        self, client: ClientRecord, redirect_uri: str, params: Mapping[str, Any]
    ) -> AuthorizeRequest:
        """The rest of the request; these errors go back to the (verified) redirect URI."""
        if _param(params, "response_type") != "code":
            raise OAuthError("unsupported_response_type", "response_type must be code.")
        challenge = _param(params, "code_challenge")
        method = _param(params, "code_challenge_method")
        if not challenge:
            raise OAuthError("invalid_request", "PKCE is required: send code_challenge (S256).")
        if method != "S256":
            # A missing method means "plain" (RFC 7636 §4.3): refused like plain itself.
            raise OAuthError("invalid_request", "code_challenge_method must be S256.")
        if not pkce.valid_challenge(challenge):
            raise OAuthError("invalid_request", "code_challenge is not a base64url SHA-256 digest.")
        scopes = self.requested_scopes(client, _param(params, "scope"))
        return AuthorizeRequest(
            client, redirect_uri, scopes, _param(params, "state"), challenge, method
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

    # -- client authentication ---------------------------------------------------------------------

    async def authenticate_client(
        self, params: Mapping[str, Any], basic: tuple[str, str] | None
    ) -> ClientRecord:
        """RFC 6749 §2.3: HTTP Basic or client_secret in the body; public clients send only an id."""
        body_id, body_secret = _param(params, "client_id"), _param(params, "client_secret")
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
        grant_type = _required(params, "grant_type")
        if grant_type == "authorization_code":
            return await self._code_grant(client, params)
        if grant_type == "refresh_token":
            return await self._refresh_grant(client, params)
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type} is not supported.")

    async def _code_grant(self, client: ClientRecord, params: Mapping[str, Any]) -> dict[str, Any]:
        code = _required(params, "code")
        redirect_uri = _required(params, "redirect_uri")
        verifier = _required(params, "code_verifier")
        now = time.time()
        found = await self.oauth.consume_code(self.hasher(code), now)
        if found is None:
            raise OAuthError("invalid_grant", "The authorization code is invalid.")
        rec, first_use = found
        if not first_use:
            # RFC 6749 §4.1.2: a code used twice means it leaked; revoke what it produced.
            await self._end_grant(rec.grant_id, "code_reuse", rec.client_id)
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
        presented = _required(params, "refresh_token")
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
        scope = _param(params, "scope")
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
        await self._end_grant(grant.id, "refresh_reuse", client.id)
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

    # -- revocation and introspection --------------------------------------------------------------

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
            await self._end_grant(refresh.grant_id, "revoked_by_client", client.id)

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

    # -- a user's grants ---------------------------------------------------------------------------

    async def active_grants(
        self, *, user_id: str | None = None, workspace_id: str | None = None
    ) -> list[GrantRecord]:
        grants = await self.oauth.list_grants(user_id=user_id, workspace_id=workspace_id)
        return [g for g in grants if g.revoked_at is None]

    async def revoke_grant(self, grant_id: str, reason: str, actor: str | None = None) -> None:
        await self._end_grant(grant_id, reason, actor)

    async def _end_grant(self, grant_id: str, reason: str, actor: str | None) -> None:
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

    # -- RFC 8414 ----------------------------------------------------------------------------------

    def metadata(self, issuer: str) -> dict[str, Any]:
        p = self.cfg.paths
        auth_methods = ["client_secret_basic", "client_secret_post", "none"]
        return {
            "issuer": issuer,
            "authorization_endpoint": issuer + p.consent,
            "token_endpoint": issuer + p.token,
            "revocation_endpoint": issuer + p.revoke,
            "introspection_endpoint": issuer + p.introspect,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": auth_methods,
            "scopes_supported": sorted(self.config.scopes.known),
        }


def grant_view(g: GrantRecord, client: ClientRecord | None) -> dict[str, Any]:
    from gateway.management.services import iso

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
    from gateway.management.services import iso

    return {
        "client_id": c.id,
        "name": c.name,
        "type": "confidential" if c.confidential else "public",
        "redirect_uris": list(c.redirect_uris),
        "scopes": sorted(c.scopes),
        "workspace_id": c.workspace_id,
        "created_at": iso(c.created_at),
    }

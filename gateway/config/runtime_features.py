"""The runtime form of the feature sections (``dashboard``, ``oauth``, ``sessions``,
``rate_limits``, ``external_auth``, ``tracing``): frozen, slotted dataclasses that the packages of
:mod:`gateway.features` read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.config.runtime_edge import Listener

__all__ = [
    "JWT_HMAC_ALGORITHMS",
    "JWT_KEY_ALGORITHMS",
    "RATE_LIMIT_DIMENSIONS",
    "DashboardConfig",
    "ExternalAuthConfig",
    "OAuthConfig",
    "OAuthPaths",
    "RateLimitRule",
    "RateLimits",
    "SessionsConfig",
    "TracingConfig",
]

# Session JWT algorithms we accept in an allowlist; "none" and anything else are refused at load.
JWT_HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
JWT_KEY_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """The token dashboard (Settings -> API Keys), served by the gateway itself."""

    path: str = "/settings/api-keys"
    # Which listener serves it: the proxy (where users already reach the API) or the admin one.
    listener: Literal["proxy", "admin"] = "proxy"
    # Signs sign-in links, session cookies and CSRF tokens; falls back to ``pepper``.
    secret: str = ""
    # Base URL printed in sign-in links (e.g. https://app.example.com); default: the listener.
    public_url: str | None = None
    session_ttl: float = 8 * 3600.0
    # Cookie holding a session JWT, checked through the gateway's session verifier when one is set.
    session_jwt_cookie: str = "session"
    # Where signed-out visitors are sent (the app's own sign-in page), if anywhere.
    login_url: str | None = None
    # Token types the dashboard mints; empty means the user token types, else every non-OAuth one.
    token_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OAuthPaths:
    """Where the authorization server's endpoints live on the proxy listener (Velocity's defaults)."""

    consent: str = "/oauth/consent"
    token: str = "/api/oauth/token"
    revoke: str = "/api/oauth/revoke"
    introspect: str = "/api/oauth/introspect"
    metadata: str = "/.well-known/oauth-authorization-server"
    grants: str = "/api/oauth/grants"


@dataclass(frozen=True, slots=True)
class OAuthConfig:
    """The OAuth 2.0 authorization server (issue 5); access tokens are a ``kind: oauth_access`` type."""

    access_token_type: str
    refresh_prefix: str = "gwrt_"
    issuer: str | None = None
    paths: OAuthPaths = field(default_factory=OAuthPaths)
    access_token_ttl: float = 3600.0
    refresh_token_ttl: float = 30 * 86400.0
    code_ttl: float = 600.0
    # A rotated refresh token presented again within this many seconds, while its successor is still
    # unused, is a retry whose response was lost: it gets a fresh pair instead of killing the family.
    refresh_reuse_grace: float = 30.0
    # Where the consent page sends a visitor who is not signed in (None: answer 401).
    login_url: str | None = None


@dataclass(frozen=True, slots=True)
class SessionsConfig:
    """Session JWTs (Supabase-style) verified with PyJWT; see :mod:`gateway.features.sessionjwt`."""

    algorithms: frozenset[str]
    issuer: str
    audience: str = "authenticated"
    secret: str | None = None
    jwks_file: str | None = None
    jwks_url: str | None = None
    # An unknown kid triggers at most one JWKS refetch per cooldown.
    jwks_cooldown: float = 300.0
    leeway: float = 10.0
    roles: frozenset[str] = frozenset({"authenticated"})
    # Cookie that may carry the JWT on the consent page (the Authorization header always may).
    cookie: str | None = None


RATE_LIMIT_DIMENSIONS = ("token", "workspace", "route", "address")


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    """At most ``limit`` requests in any ``window`` seconds per distinct value of ``per``."""

    name: str
    limit: int
    window: float
    # What one counter is kept for: any combination of token, workspace, route, address.
    per: tuple[str, ...] = ("token",)
    # Only requests authenticated with these token types (names or prefixes); empty: all.
    token_types: frozenset[str] = frozenset()
    # Only requests matched to these routes (names); empty: all.
    routes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RateLimits:
    rules: tuple[RateLimitRule, ...] = ()
    # redis://… shares counters across instances; None keeps them in this process's memory.
    redis: str | None = None
    # When Redis cannot be reached: let the request through, or refuse it with 503.
    on_redis_error: Literal["fail_open", "fail_closed"] = "fail_closed"
    key_prefix: str = "gateway:rl:"
    # Failed authentications per client address before that address is refused with 429, before
    # any token is hashed or looked up. None disables the throttle.
    failed_auth: RateLimitRule | None = None


# -- external authorization (issue 19) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExternalAuthConfig:
    """The decision endpoint for nginx auth_request, Envoy ext_authz, Traefik and Caddy forward auth.

    Served under ``path`` on its own ``listener``, or on the proxy listener when none is given.
    ``cache_seconds`` is how long a proxy may reuse an allowed decision (0 or 1: revocation must
    still reach every request within a second); refusals are never cacheable.
    """

    path: str = "/_gateway/authz"
    listener: Listener | None = None
    cache_seconds: int = 1


# -- end of external authorization -----------------------------------------------------------------


# -- tracing (OpenTelemetry, issue 21) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """``tracing:``: spans sent by OTLP/HTTP to ``endpoint`` (absent section: no tracing at all)."""

    endpoint: str  # the collector's traces URL, e.g. http://127.0.0.1:4318/v1/traces
    service_name: str = "gateway"
    # Share of new traces recorded; a client's traceparent decides for the traces it started.
    sampling_ratio: float = 1.0
    # Finished spans waiting for export; past it new spans are dropped (a down collector costs
    # memory up to this bound, never request time).
    queue_size: int = 2048
    timeout: float = 5.0  # one export attempt (in the exporter's thread, never a request's)

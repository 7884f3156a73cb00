"""The runtime form of the config: frozen, slotted dataclasses the request path reads.

:mod:`gateway.config.document` validates ``gateway.yaml`` into pydantic models; the loader then builds
these from it (derived values such as a route's index, a listener's parsed address, the closure of
scope implications are computed once there). The hot path only ever touches these objects: plain
slotted attribute reads, no validation machinery.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.problems import Problem

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Served only on routes that name them (a route without `methods` does not take them).
EXPLICIT_METHODS = frozenset({"TRACE", "CONNECT"})
# Session JWT algorithms we accept in an allowlist; "none" and anything else are refused at load.
JWT_HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
JWT_KEY_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})

# Typed config


@dataclass(frozen=True, slots=True)
class Listener:
    host: str
    port: int
    tls: ServerTLS | None = None  # issue 22: HTTPS on this listener

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"


# -- TLS and upstream targets (issue 22) ------------------------------------------------------------

# TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are OpenSSL's, all of them sound).
DEFAULT_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!SHA1"


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """``listeners.*.tls``: the certificate a listener serves, and what it asks of clients."""

    cert_file: str
    key_file: str
    min_version: str = "TLSv1.2"
    ciphers: str = DEFAULT_CIPHERS
    client_ca_file: str | None = None
    client_auth: Literal["none", "optional", "required"] = "none"


@dataclass(frozen=True, slots=True)
class UpstreamTLS:
    """``upstreams.*.tls``: how an ``https`` upstream is verified, and the certificate shown to it."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """``upstreams.*.health.check``: an active probe of every target."""

    path: str = "/"
    interval: float = 5.0
    timeout: float = 2.0
    healthy: int = 2  # consecutive successes that bring a target back
    unhealthy: int = 3  # consecutive failures that take it out


@dataclass(frozen=True, slots=True)
class TargetHealth:
    """``upstreams.*.health``: passive ejection after connect failures, optional active checks."""

    max_failures: int = 3  # consecutive connect failures before a target is ejected
    backoff: float = 10.0  # seconds an ejected target rests before it is tried again
    check: HealthCheck | None = None


@dataclass(frozen=True, slots=True)
class CredentialSource:
    """Where a token is read: a header, with a scheme (``Bearer``) or the raw header value."""

    header: str
    scheme: str | None = "Bearer"


@dataclass(frozen=True, slots=True)
class TokenType:
    name: str
    prefix: str
    kind: str
    environment: str
    credential: CredentialSource
    # PATs act with the creating user's *current* permissions in the workspace (Spedy).
    inherit_user_permissions: bool = False
    # Workspace plans allowed to mint this type (Spedy: PATs require Pro); empty means any.
    plans: frozenset[str] = frozenset()
    # Route names or tags this type may be used on (issue 17: browser keys only on browser-SDK
    # routes); empty means every route.
    routes: frozenset[str] = frozenset()
    # A key of this type with no allowed domains works from no origin (public browser keys).
    require_allowed_domains: bool = False
    # Presented as a TLS client certificate, not in a header (issue 22): see gateway/pipeline/authn.py.
    client_certificate: bool = False


@dataclass(frozen=True, slots=True)
class WorkspaceSource:
    source: Literal["header", "host", "token"] = "token"
    header: str | None = None
    match: Literal["id", "slug", "any"] = "any"
    required: bool = True
    pattern: re.Pattern[str] | None = None
    host_suffix: str | None = None
    id_format: Literal["prefixed", "objectid"] = "prefixed"


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    url: str
    environments: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 5.0
    timeout: float = 30.0
    # Requests in flight to this upstream per worker (each holds one connection); past it 503
    # UPSTREAM_BUSY instead of opening more. None: no cap.
    max_connections: int | None = None
    # Every base URL of the default environment (``url`` is the first); issue 22.
    targets: tuple[str, ...] = ()
    balance: Literal["round_robin", "least_connections"] = "round_robin"
    tls: UpstreamTLS | None = None
    health: TargetHealth = field(default_factory=TargetHealth)

    def url_for(self, environment: str | None) -> str | None:
        """The base URL for ``environment``; ``None`` when that environment has no upstream."""
        if environment is None or not self.environments:
            return self.url
        return self.environments.get(environment)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    path: str
    methods: frozenset[str] | None = None
    upstream: str | None = None
    scopes_any: tuple[str, ...] = ()
    scopes_all: tuple[str, ...] = ()
    public: bool = False
    strip_prefix: str | None = None
    add_prefix: str | None = None
    keep_credential: bool = False
    # A built-in endpoint served by the gateway itself instead of an upstream (see gateway.pipeline.builtin).
    handler: str | None = None
    # Auth methods accepted on this route ("token", "session", "oauth"); empty means all.
    auth_methods: frozenset[str] = frozenset()
    max_body_bytes: int | None = None
    # Honour X-HTTP-Method-Override & co. and `_method`: the scope check then uses that method.
    method_override: bool = False
    index: int = 0
    # Free labels a token type's ``routes`` can name (e.g. ``browser``).
    tags: frozenset[str] = frozenset()
    # A verified, registered client certificate is required *as well as* the credential (issue 22).
    require_client_certificate: bool = False


@dataclass(frozen=True, slots=True)
class ScopeRules:
    """``known`` (empty: any), the superuser scope, and implications closed at load time."""

    known: frozenset[str] = frozenset()
    superuser: str | None = "admin:all"
    implies: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def expand(self, granted: frozenset[str]) -> frozenset[str]:
        out = set(granted)
        for scope in granted:
            out |= self.implies.get(scope, frozenset())
        return frozenset(out)


@dataclass(frozen=True, slots=True)
class IdentityHeaders:
    token_id: str = "X-Gateway-Token-Id"
    user_id: str = "X-Gateway-User-Id"
    workspace_id: str = "X-Gateway-Workspace-Id"
    workspace_slug: str = "X-Gateway-Workspace-Slug"
    scopes: str = "X-Gateway-Scopes"
    auth_method: str = "X-Gateway-Auth-Method"
    environment: str = "X-Gateway-Environment"

    def names(self) -> tuple[str, ...]:
        return (
            self.token_id,
            self.user_id,
            self.workspace_id,
            self.workspace_slug,
            self.scopes,
            self.auth_method,
            self.environment,
        )


@dataclass(frozen=True, slots=True)
class CacheConfig:
    size: int = 100_000
    ttl: float = 60.0
    negative_size: int = 100_000
    negative_ttl: float = 10.0
    # How often each worker polls the store's change feed; bounds revocation latency.
    poll_interval: float = 0.25
    # How often last_used_at is written, in one batch.
    usage_flush_interval: float = 5.0


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Bounds on what one client may cost; each breach gets a clear status."""

    # SIGTERM: stop accepting, let in-flight requests finish for up to this long, then exit.
    shutdown_grace: float = 30.0
    # Whole-request deadline (auth + upstream + relay); 504 when exceeded before the response starts.
    request_timeout: float = 300.0
    # Request body default for routes without max_body_bytes (None: unlimited, streamed).
    max_body_bytes: int | None = None
    # Header limits, enforced by the HTTP parser (431/400 before any handler runs).
    max_header_bytes: int = 16384
    max_line_bytes: int = 8190
    max_headers: int = 100
    # A connection that sends no complete request for this long (idle keep-alive, or a
    # slowloris trickling its headers) is closed.
    idle_timeout: float = 75.0
    # Open connections per worker; past it a new connection gets 503 TOO_MANY_CONNECTIONS.
    max_connections: int | None = 10000
    # Longest pause (seconds) between two pieces of a request body; past it 408 REQUEST_TIMEOUT
    # and the upstream request is abandoned, so a trickled body cannot hold an upstream connection.
    body_read_timeout: float = 5.0


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


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """How the gateway treats its store beyond the URL (``store:`` given as a mapping)."""

    # While the store is unreachable, cached decisions keep serving this long (seconds) after the
    # last successful change-feed read, even entries past their cache TTL (stale-while-
    # unavailable); then every cache is dropped and requests fail closed with 503. 0: no grace.
    outage_grace: float = 30.0
    # Network stores only: how long one connect / one query may take before it counts as an outage.
    connect_timeout: float = 2.0
    query_timeout: float = 5.0
    # Issue 23: a store lookup on the request path (cache miss, /readyz) gets this long before the
    # request gets 503 and the circuit opens; while open, one probe per probe_interval goes through.
    lookup_timeout: float = 0.5
    probe_interval: float = 1.0


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


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    proxy: Listener
    admin: Listener | None
    metrics: Listener | None
    store: str
    token_types: tuple[TokenType, ...]
    workspace: WorkspaceSource
    upstreams: Mapping[str, Upstream]
    routes: tuple[Route, ...]
    scopes: ScopeRules
    roles: Mapping[str, frozenset[str]]
    identity_headers: IdentityHeaders
    cache: CacheConfig
    envelope: Literal["default", "velt"]
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    pepper: str | None
    reject_query_credentials: tuple[str, ...]
    warnings: tuple[Problem, ...] = ()
    # Tokens with the superuser scope in this workspace (slug or id) administer every workspace
    # through the admin API; other admin tokens only their own workspace.
    operator_workspace: str | None = None
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    dashboard: DashboardConfig | None = None
    oauth: OAuthConfig | None = None
    sessions: SessionsConfig | None = None
    store_options: StoreOptions = field(default_factory=StoreOptions)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    external_auth: ExternalAuthConfig | None = None
    tracing: TracingConfig | None = None

    def token_type(self, name: str) -> TokenType | None:
        for tt in self.token_types:
            if tt.name == name or tt.prefix == name:
                return tt
        return None

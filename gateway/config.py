"""Load and validate ``gateway.yaml`` into frozen dataclasses.

Loading is one step, :func:`load`: read YAML, interpolate ``${VAR}`` / ``${VAR:-default}`` in string
scalars (never in the raw text, so an env value cannot inject YAML), then read every section through a
:class:`_Reader` that records each problem with its key path and bad value instead of stopping at the
first. :class:`ConfigError` carries all of them, so ``gateway check`` can report everything at once and
a reload can refuse a bad file while the old config keeps serving.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

__all__ = [
    "CacheConfig",
    "Config",
    "ConfigError",
    "CredentialSource",
    "DashboardConfig",
    "ExternalAuthConfig",
    "HealthCheck",
    "IdentityHeaders",
    "Listener",
    "OAuthConfig",
    "OAuthPaths",
    "Problem",
    "RateLimitRule",
    "RateLimits",
    "Route",
    "ScopeRules",
    "ServerTLS",
    "SessionsConfig",
    "StoreOptions",
    "TargetHealth",
    "TokenType",
    "TracingConfig",
    "Upstream",
    "UpstreamTLS",
    "WorkspaceSource",
    "load",
    "load_text",
]

T = TypeVar("T")
_MISSING: Any = object()
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Served only on routes that name them (a route without `methods` does not take them).
EXPLICIT_METHODS = frozenset({"TRACE", "CONNECT"})
TOKEN_KINDS = frozenset({"api_key", "pat", "oauth_access", "workspace_key"})
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_SCOPE = re.compile(r"^[A-Za-z0-9_.:*-]+$")
_PREFIX = re.compile(r"[a-z][a-z0-9]*_([a-z0-9]+_)*")
# Session JWT algorithms we accept in an allowlist; "none" and anything else are refused at load.
JWT_HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
JWT_KEY_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})


# ---------------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config file: where, what, and the value found there."""

    path: str
    message: str
    value: Any = _MISSING
    warning: bool = False

    def render(self, source: str) -> str:
        where = f"{source}: {self.path}" if self.path else source
        shown = "" if self.value is _MISSING else f" (got {self.value!r})"
        kind = "warning" if self.warning else "error"
        return f"{kind}: {where}: {self.message}{shown}"


class ConfigError(Exception):
    """A config file that cannot be used; ``problems`` lists every error found."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.render(source) for p in problems))


# ---------------------------------------------------------------------------------------------------
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

TLS_MIN_VERSIONS = ("TLSv1.2", "TLSv1.3")
# TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are OpenSSL's, all of them sound).
DEFAULT_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!SHA1"
CLIENT_AUTH = ("none", "optional", "required")
BALANCE = ("round_robin", "least_connections")


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
    # A built-in endpoint served by the gateway itself instead of an upstream (see gateway.builtin).
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
    """Session JWTs (Supabase-style) verified with PyJWT; see :mod:`gateway.sessions`."""

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


_AUTHZ_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


def _read_external_auth(raw: Any, r: _Reader, trusted: list[Any]) -> ExternalAuthConfig | None:
    if raw is None:
        return None
    m = r.mapping(raw, "external_auth", {"path", "listener", "cache_seconds"})
    d = ExternalAuthConfig()
    path = r.get(m, "path", "external_auth", str, d.path)
    if not _AUTHZ_PATH.match(path) or any(seg in (".", "..") for seg in path.split("/")):
        r.error("external_auth.path", "must be an absolute path like /_gateway/authz", path)
    listener = _listener(m.get("listener"), "external_auth.listener", r)
    cache = r.get(m, "cache_seconds", "external_auth", int, d.cache_seconds)
    if cache not in (0, 1):
        # Proxies count cache lifetimes in whole seconds; anything longer would break the
        # promise that a revoked token is refused everywhere within a second.
        r.error("external_auth.cache_seconds", "must be 0 or 1", cache)
    if not trusted:
        r.warn(
            "external_auth",
            "trusted_proxies is empty: the decision endpoint will refuse every caller with 403",
        )
    return ExternalAuthConfig(path=path, listener=listener, cache_seconds=cache)


# -- end of external authorization -----------------------------------------------------------------


# -- tracing (OpenTelemetry, issue 21): one contiguous block --------------------------------------
TRACING_KEYS = {"endpoint", "service_name", "sampling_ratio", "queue_size", "timeout"}


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


def _read_tracing(raw: Any, r: _Reader) -> TracingConfig | None:
    if raw is None:
        return None
    m = r.mapping(raw, "tracing", TRACING_KEYS)
    endpoint = _url(r.get(m, "endpoint", "tracing", str), "tracing.endpoint", r)
    service = r.get(m, "service_name", "tracing", str, "gateway")
    ratio = r.get(m, "sampling_ratio", "tracing", float, 1.0)
    if not 0.0 <= ratio <= 1.0:
        r.error("tracing.sampling_ratio", "must be between 0 and 1", ratio)
    queue = r.get(m, "queue_size", "tracing", int, 2048)
    if not 1 <= queue <= 1_000_000:
        r.error("tracing.queue_size", "must be between 1 and 1000000", queue)
    timeout = r.get(m, "timeout", "tracing", float, 5.0)
    if not 0 < timeout <= 60:
        r.error("tracing.timeout", "must be between 0 and 60 seconds", timeout)
    if endpoint is None:
        return None
    return TracingConfig(endpoint, service or "gateway", ratio, queue, timeout)


# -- end of tracing ---------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------
# Reading


class _Reader:
    """Typed access to a YAML tree that records problems with their key path."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, path: str, message: str, value: Any = _MISSING) -> None:
        self.problems.append(Problem(path, message, value))

    def warn(self, path: str, message: str, value: Any = _MISSING) -> None:
        self.problems.append(Problem(path, message, value, warning=True))

    def mapping(self, value: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, "must be a mapping", value)
            return {}
        for key in value:
            if key not in allowed:
                self.error(f"{path}.{key}" if path else str(key), "unknown key", key)
        return value

    def get(
        self,
        m: Mapping[str, Any],
        key: str,
        path: str,
        kind: Callable[[Any], T] | type[T],
        default: Any = _MISSING,
    ) -> Any:
        """``m[key]`` coerced to ``kind``; records a problem and returns ``default`` on failure."""
        full = f"{path}.{key}" if path else key
        if key not in m or m[key] is None:
            if default is _MISSING:
                self.error(full, "is required")
                return None
            return default
        raw = m[key]
        try:
            return _coerce(raw, kind)
        except (TypeError, ValueError) as exc:
            self.error(full, str(exc) or f"must be {getattr(kind, '__name__', kind)}", raw)
            return None if default is _MISSING else default


def _coerce(raw: Any, kind: Any) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in {"true", "false", "yes", "no", "1", "0"}:
            return raw.lower() in {"true", "yes", "1"}
        raise ValueError("must be true or false")
    if kind is int:
        if isinstance(raw, bool):
            raise ValueError("must be an integer")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
            return int(raw)
        raise ValueError("must be an integer")
    if kind is float:
        if isinstance(raw, bool):
            raise ValueError("must be a number")
        if isinstance(raw, int | float):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw)
            except ValueError:
                pass
        raise ValueError("must be a number")
    if kind is str:
        if isinstance(raw, str | int | float) and not isinstance(raw, bool):
            return str(raw)
        raise ValueError("must be a string")
    if kind is list:
        if isinstance(raw, list):
            return raw
        raise ValueError("must be a list")
    if kind is dict:
        if isinstance(raw, dict):
            return raw
        raise ValueError("must be a mapping")
    return kind(raw)


def _interpolate(node: Any, path: str, reader: _Reader) -> Any:
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            value = os.environ.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    reader.error(path, f"environment variable {name} is not set", m.group(0))
                    return ""
                return default
            return value

        return _VAR.sub(sub, node)
    if isinstance(node, dict):
        return {
            k: _interpolate(v, f"{path}.{k}" if path else str(k), reader) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", reader) for i, v in enumerate(node)]
    return node


def _listener(value: Any, path: str, r: _Reader) -> Listener | None:
    if value is None:
        return None
    tls = None
    if isinstance(value, dict):  # {address: HOST:PORT, tls: {...}} (issue 22)
        m = r.mapping(value, path, {"address", "tls"})
        tls = _read_server_tls(m.get("tls"), f"{path}.tls", r)
        path, value = f"{path}.address", r.get(m, "address", path, str, None)
        if value is None:
            return None
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        r.error(path, "must be HOST:PORT with a port from 0 to 65535", value)
        return None
    return Listener(host.strip("[]") or "127.0.0.1", int(port), tls)


def _header_name(value: Any, path: str, r: _Reader) -> str | None:
    if not isinstance(value, str) or not _HEADER_NAME.match(value):
        r.error(path, "must be an HTTP header name", value)
        return None
    return value


def _str_list(value: Any, path: str, r: _Reader) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        r.error(path, "must be a list of strings", value)
        return []
    return list(value)


def _read_token_types(raw: Any, r: _Reader) -> tuple[TokenType, ...]:
    if raw is None:
        raw = [{"name": "api_key", "prefix": "gw_", "kind": "api_key"}]
    if not isinstance(raw, list):
        r.error("token_types", "must be a list", raw)
        return ()
    out: list[TokenType] = []
    seen: dict[str, str] = {}
    allowed = {
        "name",
        "prefix",
        "kind",
        "environment",
        "credential",
        "inherit_user_permissions",
        "plans",
        "routes",
        "require_allowed_domains",
        "client_certificate",
    }
    for i, item in enumerate(raw):
        path = f"token_types[{i}]"
        m = r.mapping(item, path, allowed)
        prefix = r.get(m, "prefix", path, str)
        if prefix is not None and not _PREFIX.fullmatch(prefix):
            r.error(f"{path}.prefix", "must be lowercase letters/digits ending in '_'", prefix)
        kind = r.get(m, "kind", path, str, "api_key")
        if kind not in TOKEN_KINDS:
            r.error(f"{path}.kind", f"must be one of {sorted(TOKEN_KINDS)}", kind)
        env = r.get(m, "environment", path, str, "live")
        cred_raw = r.mapping(m.get("credential"), f"{path}.credential", {"header", "scheme"})
        header = _header_name(
            cred_raw.get("header", "Authorization"), f"{path}.credential.header", r
        )
        scheme = cred_raw.get("scheme", "Bearer" if header == "Authorization" else None)
        name = r.get(m, "name", path, str, prefix)
        if prefix is not None:
            for other in seen:
                if prefix.startswith(other) or other.startswith(prefix):
                    r.error(f"{path}.prefix", f"overlaps the prefix of {seen[other]}", prefix)
            seen[prefix] = path
        out.append(
            TokenType(
                name=name or "",
                prefix=prefix or "",
                kind=kind or "api_key",
                environment=env or "live",
                credential=CredentialSource(header or "Authorization", scheme),
                inherit_user_permissions=r.get(m, "inherit_user_permissions", path, bool, False),
                plans=frozenset(_str_list(m.get("plans"), f"{path}.plans", r)),
                routes=frozenset(_str_list(m.get("routes"), f"{path}.routes", r)),
                require_allowed_domains=r.get(m, "require_allowed_domains", path, bool, False),
                client_certificate=_client_certificate_type(m, path, r),
            )
        )
    return tuple(out)


def _check_type_routes(
    token_types: tuple[TokenType, ...], routes: tuple[Route, ...], r: _Reader
) -> None:
    """Every name in ``token_types[].routes`` must be a route's name or one of its tags."""
    known = {rt.name for rt in routes} | {t for rt in routes for t in rt.tags}
    for i, tt in enumerate(token_types):
        for name in sorted(tt.routes - known):
            r.error(f"token_types[{i}].routes", "names no route and no route tag", name)


def _client_certificate_type(m: Mapping[str, Any], path: str, r: _Reader) -> bool:
    """``client_certificate: true``: the credential is the TLS client certificate (issue 22)."""
    on = bool(r.get(m, "client_certificate", path, bool, False))
    if on and "credential" in m:
        r.error(f"{path}.credential", "a client_certificate type is not read from a header")
    return on


def _read_workspace(raw: Any, r: _Reader) -> WorkspaceSource:
    path = "workspace"
    allowed = {"source", "header", "match", "required", "pattern", "host_suffix", "id_format"}
    m = r.mapping(raw, path, allowed)
    source = r.get(m, "source", path, str, "token")
    if source not in {"header", "host", "token"}:
        r.error(f"{path}.source", "must be header, host or token", source)
        source = "token"
    header = None
    if source == "header":
        header = _header_name(m.get("header"), f"{path}.header", r)
    match = r.get(m, "match", path, str, "any")
    if match not in {"id", "slug", "any"}:
        r.error(f"{path}.match", "must be id, slug or any", match)
        match = "any"
    pattern = None
    if m.get("pattern") is not None:
        try:
            pattern = re.compile(str(m["pattern"]))
        except re.error as exc:
            r.error(f"{path}.pattern", f"is not a valid regular expression: {exc}", m["pattern"])
    id_format = r.get(m, "id_format", path, str, "prefixed")
    if id_format not in {"prefixed", "objectid"}:
        r.error(f"{path}.id_format", "must be prefixed or objectid", id_format)
        id_format = "prefixed"
    return WorkspaceSource(
        source=source,
        header=header,
        match=match,
        required=r.get(m, "required", path, bool, True),
        pattern=pattern,
        host_suffix=r.get(m, "host_suffix", path, str, None),
        id_format=id_format,
    )


def _url(value: Any, path: str, r: _Reader) -> str | None:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        r.error(path, "must be an http:// or https:// URL", value)
        return None
    return value.rstrip("/")


def _read_upstreams(raw: Any, r: _Reader) -> dict[str, Upstream]:
    if not isinstance(raw, dict) or not raw:
        r.error("upstreams", "must be a non-empty mapping of name to upstream", raw)
        return {}
    out: dict[str, Upstream] = {}
    for name, item in raw.items():
        path = f"upstreams.{name}"
        if isinstance(item, str):
            item = {"url": item}
        m = r.mapping(item, path, UPSTREAM_KEYS)
        targets = _read_targets(m, path, r)
        envs: dict[str, str] = {}
        env_raw = r.mapping(
            m.get("environments"), f"{path}.environments", set(m.get("environments") or {})
        )
        for env, env_url in env_raw.items():
            if env_url in (None, ""):
                continue  # an unset ${SANDBOX_UPSTREAM_URL:-} means "no such environment"
            checked = _url(env_url, f"{path}.environments.{env}", r)
            if checked:
                envs[str(env)] = checked
        balance = r.get(m, "balance", path, str, "round_robin")
        if balance not in BALANCE:
            r.error(f"{path}.balance", f"must be one of {', '.join(BALANCE)}", balance)
            balance = "round_robin"
        tls = _read_upstream_tls(m.get("tls"), f"{path}.tls", r)
        if tls is not None and not any(
            u.startswith("https://") for u in (*targets, *envs.values())
        ):
            r.error(f"{path}.tls", "is set but no URL of this upstream is https://")
        out[str(name)] = Upstream(
            name=str(name),
            url=targets[0] if targets else "",
            environments=envs,
            connect_timeout=r.get(m, "connect_timeout", path, float, 5.0),
            timeout=r.get(m, "timeout", path, float, 30.0),
            max_connections=_positive_or_none(m, "max_connections", path, r),
            targets=tuple(targets),
            balance=balance,
            tls=tls,
            health=_read_health(m.get("health"), f"{path}.health", r),
        )
    return out


def _positive_or_none(m: Mapping[str, Any], key: str, path: str, r: _Reader) -> int | None:
    value: int | None = r.get(m, key, path, int, None)
    if value is not None and value <= 0:
        r.error(f"{path}.{key}", "must be a positive number (or left out for no cap)", value)
        return None
    return value


UPSTREAM_KEYS = {"url", "targets", "balance", "tls", "health", "environments"} | {
    "connect_timeout",
    "timeout",
    "max_connections",
}


def _read_targets(m: Mapping[str, Any], path: str, r: _Reader) -> list[str]:
    """``url`` (one target) or ``targets`` (several), exactly one of them; duplicates refused."""
    if ("url" in m) == ("targets" in m):
        r.error(path, "needs exactly one of url or targets")
        return []
    if "url" in m:
        url = _url(m.get("url"), f"{path}.url", r)
        return [url] if url else []
    raw = m.get("targets")
    if not isinstance(raw, list) or not raw:
        r.error(f"{path}.targets", "must be a non-empty list of URLs", raw)
        return []
    out: list[str] = []
    for i, item in enumerate(raw):
        url = _url(item, f"{path}.targets[{i}]", r)
        if url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
            # Target URLs label metrics and log lines: keep credentials out of them.
            r.error(f"{path}.targets[{i}]", "must not carry user:password credentials")
        elif url and url in out:
            r.error(f"{path}.targets[{i}]", "is listed twice", item)
        elif url:
            out.append(url)
    return out


def _tls_file(m: Mapping[str, Any], key: str, path: str, r: _Reader) -> str | None:
    """A certificate/key file path that must exist and be readable now (checked again on use)."""
    value = r.get(m, key, path, str, None)
    if value is not None and not os.access(value, os.R_OK):
        r.error(f"{path}.{key}", "is not a readable file", value)
    return value  # type: ignore[no-any-return]


def _read_server_tls(raw: Any, path: str, r: _Reader) -> ServerTLS | None:
    if raw is None:
        return None
    m = r.mapping(
        raw,
        path,
        {"cert_file", "key_file", "min_version", "ciphers", "client_ca_file", "client_auth"},
    )
    cert, key = _tls_file(m, "cert_file", path, r), _tls_file(m, "key_file", path, r)
    if cert is None:
        r.error(f"{path}.cert_file", "is required")
    if key is None:
        r.error(f"{path}.key_file", "is required")
    min_version = r.get(m, "min_version", path, str, "TLSv1.2")
    if min_version not in TLS_MIN_VERSIONS:
        r.error(
            f"{path}.min_version",
            "must be TLSv1.2 or TLSv1.3 (older versions are refused)",
            min_version,
        )
        min_version = "TLSv1.2"
    client_auth = r.get(m, "client_auth", path, str, "none")
    client_ca = _tls_file(m, "client_ca_file", path, r)
    if client_auth not in CLIENT_AUTH:
        r.error(f"{path}.client_auth", "must be none, optional or required", client_auth)
        client_auth = "none"
    if client_auth != "none" and client_ca is None:
        r.error(f"{path}.client_ca_file", f"is required with client_auth: {client_auth}")
    ciphers = r.get(m, "ciphers", path, str, DEFAULT_CIPHERS)
    try:
        ssl.create_default_context().set_ciphers(ciphers)
    except ssl.SSLError:
        r.error(f"{path}.ciphers", "names no cipher this OpenSSL offers", ciphers)
    return ServerTLS(
        cert_file=cert or "",
        key_file=key or "",
        min_version=min_version,
        ciphers=ciphers,
        client_ca_file=client_ca,
        client_auth=client_auth,
    )


def _read_upstream_tls(raw: Any, path: str, r: _Reader) -> UpstreamTLS | None:
    if raw is None:
        return None
    m = r.mapping(raw, path, {"ca_file", "cert_file", "key_file", "server_name", "verify"})
    cert, key = _tls_file(m, "cert_file", path, r), _tls_file(m, "key_file", path, r)
    if (cert is None) != (key is None):
        r.error(path, "cert_file and key_file go together (the client certificate and its key)")
    verify = r.get(m, "verify", path, bool, True)
    if not verify:
        r.warn(
            f"{path}.verify",
            "is false: the upstream's certificate is NOT verified; anyone on the path can "
            "impersonate it and read every token and identity header sent to it",
        )
    return UpstreamTLS(
        ca_file=_tls_file(m, "ca_file", path, r),
        cert_file=cert,
        key_file=key,
        server_name=r.get(m, "server_name", path, str, None),
        verify=verify,
    )


def _read_health(raw: Any, path: str, r: _Reader) -> TargetHealth:
    m = r.mapping(raw, path, {"max_failures", "backoff", "check"})
    check = None
    if m.get("check") is not None:
        c = r.mapping(
            m["check"], f"{path}.check", {"path", "interval", "timeout", "healthy", "unhealthy"}
        )
        probe = r.get(c, "path", f"{path}.check", str, "/")
        if not probe.startswith("/"):
            r.error(f"{path}.check.path", "must start with '/'", probe)
        check = HealthCheck(
            path=probe,
            interval=_duration(c.get("interval"), f"{path}.check.interval", r, 5.0),
            timeout=_duration(c.get("timeout"), f"{path}.check.timeout", r, 2.0),
            healthy=_positive(c, "healthy", f"{path}.check", r, 2),
            unhealthy=_positive(c, "unhealthy", f"{path}.check", r, 3),
        )
    return TargetHealth(
        max_failures=_positive(m, "max_failures", path, r, 3),
        backoff=_duration(m.get("backoff"), f"{path}.backoff", r, 10.0),
        check=check,
    )


def _positive(m: Mapping[str, Any], key: str, path: str, r: _Reader, default: int) -> int:
    value = r.get(m, key, path, int, default)
    if value < 1:
        r.error(f"{path}.{key}", "must be at least 1", value)
        return default
    return int(value)


_PATH_PATTERN = re.compile(
    r"^/([A-Za-z0-9._~!$&'()*+,=:@-]+|\{[A-Za-z_][A-Za-z0-9_]*\}|\*\*)?(/.*)?$"
)


def _check_path_pattern(pattern: str, path: str, r: _Reader) -> bool:
    if not pattern.startswith("/"):
        r.error(path, "must start with '/'", pattern)
        return False
    segments = pattern.split("/")[1:]
    for i, seg in enumerate(segments):
        if seg == "**":
            if i != len(segments) - 1:
                r.error(path, "'**' is only allowed as the last segment", pattern)
                return False
        elif seg.startswith("{"):
            if not re.fullmatch(r"\{[A-Za-z_][A-Za-z0-9_]*\}", seg):
                r.error(path, "a parameter segment must look like {name}", pattern)
                return False
        elif seg == "" and i != len(segments) - 1:
            r.error(path, "must not contain empty segments ('//')", pattern)
            return False
        elif seg in {".", ".."} or not re.fullmatch(r"[A-Za-z0-9._~!$&'()*+,=:@-]*", seg):
            r.error(path, "segments may only hold unreserved characters", pattern)
            return False
    return True


def _read_scope_spec(m: Mapping[str, Any], path: str, r: _Reader) -> tuple[list[str], list[str]]:
    raw = m.get("scopes")
    if raw is None:
        return [], []
    if isinstance(raw, str | list):
        return [], _str_list(raw, f"{path}.scopes", r)
    sm = r.mapping(raw, f"{path}.scopes", {"any_of", "all_of"})
    return (
        _str_list(sm.get("any_of"), f"{path}.scopes.any_of", r),
        _str_list(sm.get("all_of"), f"{path}.scopes.all_of", r),
    )


ROUTE_KEYS = {
    "name",
    "path",
    "methods",
    "upstream",
    "scopes",
    "public",
    "strip_prefix",
    "add_prefix",
    "keep_credential",
    "handler",
    "auth_methods",
    "max_body_bytes",
    "method_override",
    "tags",
    "require_client_certificate",
}


def _read_routes(raw: Any, r: _Reader, upstreams: Mapping[str, Upstream]) -> tuple[Route, ...]:
    if not isinstance(raw, list):
        r.error("routes", "must be a list", raw)
        return ()
    out: list[Route] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        path = f"routes[{i}]"
        m = r.mapping(item, path, ROUTE_KEYS)
        name = r.get(m, "name", path, str, f"route{i}")
        if name in names:
            r.error(f"{path}.name", "duplicates another route's name", name)
        names.add(name)
        pattern = r.get(m, "path", path, str)
        if pattern is not None and not _check_path_pattern(pattern, f"{path}.path", r):
            pattern = None
        methods = None
        if m.get("methods") is not None:
            listed = [s.upper() for s in _str_list(m["methods"], f"{path}.methods", r)]
            for meth in listed:
                if meth not in HTTP_METHODS and meth not in EXPLICIT_METHODS:
                    r.error(f"{path}.methods", f"unknown HTTP method {meth}", meth)
            methods = frozenset(listed)
        handler = r.get(m, "handler", path, str, None)
        upstream = r.get(m, "upstream", path, str, None)
        if handler is None and upstream is None:
            if len(upstreams) == 1:
                upstream = next(iter(upstreams))
            else:
                r.error(f"{path}.upstream", "is required (there is more than one upstream)")
        if upstream is not None and upstream not in upstreams:
            r.error(f"{path}.upstream", "names an unknown upstream", upstream)
        any_of, all_of = _read_scope_spec(m, path, r)
        public = r.get(m, "public", path, bool, False)
        if public and (any_of or all_of):
            r.error(f"{path}.scopes", "a public route cannot require scopes", any_of or all_of)
        strip = r.get(m, "strip_prefix", path, str, None)
        if strip is not None and pattern is not None and not pattern.startswith(strip):
            r.error(f"{path}.strip_prefix", "must be a prefix of the route path", strip)
        auth_methods = frozenset(_str_list(m.get("auth_methods"), f"{path}.auth_methods", r))
        for am in auth_methods:
            if am not in {"token", "session", "oauth", "certificate"}:
                r.error(
                    f"{path}.auth_methods", "must list token, session, oauth or certificate", am
                )
        out.append(
            Route(
                name=name or "",
                path=pattern or "/",
                methods=methods,
                upstream=upstream,
                scopes_any=tuple(any_of),
                scopes_all=tuple(all_of),
                public=public,
                strip_prefix=strip,
                add_prefix=r.get(m, "add_prefix", path, str, None),
                keep_credential=r.get(m, "keep_credential", path, bool, False),
                handler=handler,
                auth_methods=auth_methods,
                max_body_bytes=r.get(m, "max_body_bytes", path, int, None),
                method_override=r.get(m, "method_override", path, bool, False),
                index=i,
                tags=frozenset(_str_list(m.get("tags"), f"{path}.tags", r)),
                require_client_certificate=r.get(
                    m, "require_client_certificate", path, bool, False
                ),
            )
        )
    return tuple(out)


def _closure(implies: Mapping[str, set[str]]) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for start in implies:
        seen: set[str] = set()
        stack = list(implies[start])
        while stack:
            s = stack.pop()
            if s not in seen:
                seen.add(s)
                stack.extend(implies.get(s, ()))
        out[start] = frozenset(seen)
    return out


def _read_scopes(raw: Any, r: _Reader) -> ScopeRules:
    m = r.mapping(raw, "scopes", {"known", "superuser", "implies"})
    known = _str_list(m.get("known"), "scopes.known", r)
    for s in known:
        if not _SCOPE.match(s):
            r.error("scopes.known", "a scope may hold letters, digits and . : _ * -", s)
    implies_raw = r.mapping(m.get("implies"), "scopes.implies", set(m.get("implies") or {}))
    implies: dict[str, set[str]] = {}
    for k, v in implies_raw.items():
        implies[str(k)] = set(_str_list(v, f"scopes.implies.{k}", r))
    superuser = m.get("superuser", "admin:all")
    return ScopeRules(
        known=frozenset(known), superuser=superuser or None, implies=_closure(implies)
    )


def _read_roles(raw: Any, r: _Reader) -> dict[str, frozenset[str]]:
    if raw is None:
        return {"owner": frozenset({"admin:all"}), "admin": frozenset({"admin:all"})}
    m = r.mapping(raw, "roles", set(raw) if isinstance(raw, dict) else set())
    return {str(k): frozenset(_str_list(v, f"roles.{k}", r)) for k, v in m.items()}


def _read_identity_headers(raw: Any, r: _Reader) -> IdentityHeaders:
    fields = set(IdentityHeaders.__dataclass_fields__)
    m = r.mapping(raw, "identity_headers", fields)
    values = {k: _header_name(v, f"identity_headers.{k}", r) for k, v in m.items()}
    return IdentityHeaders(**{k: v for k, v in values.items() if v})


def _read_cache(raw: Any, r: _Reader) -> CacheConfig:
    m = r.mapping(raw, "cache", set(CacheConfig.__dataclass_fields__))
    d = CacheConfig()
    cfg = CacheConfig(
        size=r.get(m, "size", "cache", int, d.size),
        ttl=r.get(m, "ttl", "cache", float, d.ttl),
        negative_size=r.get(m, "negative_size", "cache", int, d.negative_size),
        negative_ttl=r.get(m, "negative_ttl", "cache", float, d.negative_ttl),
        poll_interval=r.get(m, "poll_interval", "cache", float, d.poll_interval),
        usage_flush_interval=r.get(
            m, "usage_flush_interval", "cache", float, d.usage_flush_interval
        ),
    )
    for key in ("size", "negative_size"):
        if getattr(cfg, key) <= 0:
            r.error(f"cache.{key}", "must be positive", getattr(cfg, key))
    if not 0 < cfg.poll_interval <= 1.0:
        r.error(
            "cache.poll_interval",
            "must be in (0, 1] so changes land within a second",
            cfg.poll_interval,
        )
    return cfg


def _read_limits(raw: Any, r: _Reader) -> LimitsConfig:
    m = r.mapping(raw, "limits", set(LimitsConfig.__dataclass_fields__))
    d = LimitsConfig()
    out = LimitsConfig(
        shutdown_grace=r.get(m, "shutdown_grace", "limits", float, d.shutdown_grace),
        request_timeout=r.get(m, "request_timeout", "limits", float, d.request_timeout),
        max_body_bytes=r.get(m, "max_body_bytes", "limits", int, d.max_body_bytes),
        max_header_bytes=r.get(m, "max_header_bytes", "limits", int, d.max_header_bytes),
        max_line_bytes=r.get(m, "max_line_bytes", "limits", int, d.max_line_bytes),
        max_headers=r.get(m, "max_headers", "limits", int, d.max_headers),
        idle_timeout=r.get(m, "idle_timeout", "limits", float, d.idle_timeout),
        max_connections=r.get(m, "max_connections", "limits", int, d.max_connections),
        body_read_timeout=r.get(m, "body_read_timeout", "limits", float, d.body_read_timeout),
    )
    for key in LimitsConfig.__dataclass_fields__:
        value = getattr(out, key)
        if value is not None and value <= 0:
            r.error(f"limits.{key}", "must be positive", value)
    return out


_STORE_URL = re.compile(r"^(sqlite:///|sqlite://:memory:|postgres(ql)?://)")


def _read_store(raw: Any, r: _Reader) -> tuple[str, StoreOptions]:
    """``store:`` as a URL string, or a mapping with ``url`` and the outage options."""
    d = StoreOptions()
    if raw is None or isinstance(raw, str):
        url = r.get({"store": raw}, "store", "", str, "sqlite:///gateway.db")
        opts = d
        path = "store"
    else:
        m = r.mapping(raw, "store", {"url", *StoreOptions.__dataclass_fields__})
        url = r.get(m, "url", "store", str, "sqlite:///gateway.db")
        opts = StoreOptions(
            outage_grace=r.get(m, "outage_grace", "store", float, d.outage_grace),
            connect_timeout=r.get(m, "connect_timeout", "store", float, d.connect_timeout),
            query_timeout=r.get(m, "query_timeout", "store", float, d.query_timeout),
            lookup_timeout=r.get(m, "lookup_timeout", "store", float, d.lookup_timeout),
            probe_interval=r.get(m, "probe_interval", "store", float, d.probe_interval),
        )
        path = "store.url"
        if opts.outage_grace < 0:
            r.error("store.outage_grace", "must be zero or positive", opts.outage_grace)
        for key in ("connect_timeout", "query_timeout", "lookup_timeout", "probe_interval"):
            if getattr(opts, key) <= 0:
                r.error(f"store.{key}", "must be positive", getattr(opts, key))
    if url and not _STORE_URL.match(url):
        r.error(path, "must be sqlite:///PATH or postgresql://…", url)
    return url or "", opts


_RULE_KEYS = {"name", "limit", "window", "per", "token_types", "routes"}


def _read_rate_rule(raw: Any, path: str, r: _Reader, default_name: str) -> RateLimitRule | None:
    m = r.mapping(raw, path, _RULE_KEYS)
    limit = r.get(m, "limit", path, int)
    window = r.get(m, "window", path, float, 60.0)
    if limit is not None and limit <= 0:
        r.error(f"{path}.limit", "must be a positive integer", limit)
    if window is not None and window <= 0:
        r.error(f"{path}.window", "must be a positive number of seconds", window)
    per = _str_list(m.get("per", ["token"]), f"{path}.per", r)
    for dim in per:
        if dim not in RATE_LIMIT_DIMENSIONS:
            r.error(f"{path}.per", f"must name {', '.join(RATE_LIMIT_DIMENSIONS)}", dim)
    if not per:
        r.error(f"{path}.per", "must name at least one of " + ", ".join(RATE_LIMIT_DIMENSIONS))
    name = r.get(m, "name", path, str, default_name)
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
        r.error(f"{path}.name", "may hold letters, digits and . : _ - (up to 64)", name)
    if limit is None or limit <= 0 or window is None or window <= 0:
        return None
    return RateLimitRule(
        name=name or default_name,
        limit=limit,
        window=window,
        per=tuple(dict.fromkeys(per)),
        token_types=frozenset(_str_list(m.get("token_types"), f"{path}.token_types", r)),
        routes=frozenset(_str_list(m.get("routes"), f"{path}.routes", r)),
    )


def _read_rate_limits(
    raw: Any, r: _Reader, routes: tuple[Route, ...], types: tuple[TokenType, ...]
) -> RateLimits:
    m = r.mapping(
        raw, "rate_limits", {"rules", "redis", "on_redis_error", "key_prefix", "failed_auth"}
    )
    d = RateLimits()
    redis = r.get(m, "redis", "rate_limits", str, None) or None
    if redis is not None and not re.match(r"^(redis|rediss|unix)://", redis):
        r.error("rate_limits.redis", "must be a redis://, rediss:// or unix:// URL", redis)
    mode = r.get(m, "on_redis_error", "rate_limits", str, d.on_redis_error)
    if mode not in {"fail_open", "fail_closed"}:
        r.error("rate_limits.on_redis_error", "must be fail_open or fail_closed", mode)
        mode = d.on_redis_error
    rules: list[RateLimitRule] = []
    raw_rules = m.get("rules") or []
    if not isinstance(raw_rules, list):
        r.error("rate_limits.rules", "must be a list", raw_rules)
        raw_rules = []
    route_names = {rt.name for rt in routes}
    type_names = {t.name for t in types} | {t.prefix for t in types}
    for i, item in enumerate(raw_rules):
        path = f"rate_limits.rules[{i}]"
        rule = _read_rate_rule(item, path, r, f"rule{i}")
        if rule is None:
            continue
        if any(x.name == rule.name for x in rules):
            r.error(f"{path}.name", "duplicates another rule's name", rule.name)
        for rn in sorted(rule.routes - route_names):
            r.error(f"{path}.routes", "names an unknown route", rn)
        for tn in sorted(rule.token_types - type_names):
            r.error(f"{path}.token_types", "names an unknown token type", tn)
        rules.append(rule)
    failed = None
    if m.get("failed_auth") is not None:
        fm = m["failed_auth"]
        if isinstance(fm, dict):
            fm = {**fm, "per": ["address"]}
        failed = _read_rate_rule(fm, "rate_limits.failed_auth", r, "failed_auth")
    return RateLimits(
        rules=tuple(rules),
        redis=redis,
        on_redis_error=mode,
        key_prefix=r.get(m, "key_prefix", "rate_limits", str, d.key_prefix),
        failed_auth=failed,
    )


def _check_scope_references(
    cfg_routes: tuple[Route, ...],
    rules: ScopeRules,
    roles: Mapping[str, frozenset[str]],
    r: _Reader,
) -> None:
    if not rules.known:
        return
    valid = rules.known | ({rules.superuser} if rules.superuser else set())
    for route in cfg_routes:
        for s in (*route.scopes_any, *route.scopes_all):
            if s not in valid:
                r.error(f"routes[{route.index}].scopes", "names a scope not in scopes.known", s)
    for role, scopes in roles.items():
        for s in scopes:
            if s not in valid:
                r.error(f"roles.{role}", "names a scope not in scopes.known", s)


def _warn_shadowed(routes: tuple[Route, ...], r: _Reader) -> None:
    """Two routes with the same pattern and overlapping methods: the later one never matches."""
    for i, a in enumerate(routes):
        for b in routes[i + 1 :]:
            if a.path != b.path:
                continue
            if a.methods is None or b.methods is None or a.methods & b.methods:
                r.warn(
                    f"routes[{b.index}]",
                    f"is shadowed by routes[{a.index}] ({a.name}) with the same path and methods",
                    b.name,
                )


_DASHBOARD_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
_BASE_URL = re.compile(r"^https?://[^/?#\s]+(/[^?#\s]*)?$")


def _read_dashboard(
    raw: Any,
    r: _Reader,
    pepper: str | None,
    admin: Listener | None,
    token_types: tuple[TokenType, ...],
) -> DashboardConfig | None:
    if raw is None:
        return None
    m = r.mapping(raw, "dashboard", set(DashboardConfig.__dataclass_fields__))
    d = DashboardConfig()
    path = r.get(m, "path", "dashboard", str, d.path)
    if not _DASHBOARD_PATH.match(path) or any(seg in (".", "..") for seg in path.split("/")):
        r.error("dashboard.path", "must be an absolute path like /settings/api-keys", path)
    listener = r.get(m, "listener", "dashboard", str, d.listener)
    if listener not in ("proxy", "admin"):
        r.error("dashboard.listener", "must be proxy or admin", listener)
        listener = d.listener
    elif listener == "admin" and admin is None:
        r.error("dashboard.listener", "is admin but listeners.admin is not set", listener)
    secret = r.get(m, "secret", "dashboard", str, "") or pepper or ""
    if secret and len(secret) < 16:
        r.error("dashboard.secret", "must be at least 16 characters", "<hidden>")
    public_url = r.get(m, "public_url", "dashboard", str, None)
    if public_url is not None:
        if not _BASE_URL.match(public_url):
            r.error("dashboard.public_url", "must be an http(s) URL without query", public_url)
        public_url = public_url.rstrip("/")
    login_url = r.get(m, "login_url", "dashboard", str, None)
    if login_url is not None and not (_BASE_URL.match(login_url) or login_url.startswith("/")):
        r.error("dashboard.login_url", "must be an http(s) URL or an absolute path", login_url)
    ttl = r.get(m, "session_ttl", "dashboard", float, d.session_ttl)
    if not 0 < ttl <= 30 * 86400:
        r.error("dashboard.session_ttl", "must be between 0 and 30 days (in seconds)", ttl)
    cookie = r.get(m, "session_jwt_cookie", "dashboard", str, d.session_jwt_cookie)
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", cookie):
        r.error("dashboard.session_jwt_cookie", "must be a cookie name", cookie)
    types = _str_list(m.get("token_types"), "dashboard.token_types", r)
    by_name = {t.name: t for t in token_types}
    for name in types:
        tt = by_name.get(name)
        if tt is None:
            r.error("dashboard.token_types", "names no token type in token_types", name)
        elif tt.kind == "oauth_access":
            r.error("dashboard.token_types", "OAuth access tokens are not minted by hand", name)
    if not secret:
        # Presets declare the dashboard at their document's path with
        # `secret: ${GATEWAY_DASHBOARD_SECRET:-}`: without a secret it stays off, and says so.
        r.warn(
            "dashboard.secret",
            "is empty and no pepper is set: the dashboard is off until one is configured",
        )
        return None
    return DashboardConfig(
        path=path,
        listener=listener,
        secret=secret,
        public_url=public_url,
        session_ttl=ttl,
        session_jwt_cookie=cookie,
        login_url=login_url,
        token_types=tuple(types),
    )


def _duration(value: Any, path: str, r: _Reader, default: float) -> float:
    """Seconds from a number or a ``30s``/``10m``/``1h``/``30d`` string."""
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    m = re.fullmatch(r"(\d+)([smhd])", str(value).strip())
    if m is None or int(m.group(1)) <= 0:
        r.error(path, "must be a positive number of seconds or e.g. 30s, 10m, 1h, 30d", value)
        return default
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


OAUTH_KEYS = {
    "access_token_type",
    "refresh_prefix",
    "issuer",
    "paths",
    "access_token_ttl",
    "refresh_token_ttl",
    "code_ttl",
    "refresh_reuse_grace",
    "login_url",
}


def _read_oauth(raw: Any, r: _Reader, token_types: tuple[TokenType, ...]) -> OAuthConfig | None:
    m = r.mapping(raw, "oauth", OAUTH_KEYS)
    oauth_types = [t for t in token_types if t.kind == "oauth_access"]
    tt_name = r.get(
        m, "access_token_type", "oauth", str, oauth_types[0].name if oauth_types else None
    )
    if tt_name is None:
        r.error("oauth.access_token_type", "is required: add a token type with kind oauth_access")
    else:
        tt = next((t for t in token_types if tt_name in (t.name, t.prefix)), None)
        if tt is None or tt.kind != "oauth_access":
            r.error(
                "oauth.access_token_type", "must name a token type with kind oauth_access", tt_name
            )
    refresh_prefix = r.get(m, "refresh_prefix", "oauth", str, "gwrt_")
    if not _PREFIX.fullmatch(refresh_prefix or ""):
        r.error(
            "oauth.refresh_prefix", "must be lowercase letters/digits ending in '_'", refresh_prefix
        )
    for t in token_types:
        if refresh_prefix and (
            t.prefix.startswith(refresh_prefix) or refresh_prefix.startswith(t.prefix)
        ):
            r.error(
                "oauth.refresh_prefix",
                f"overlaps the prefix of token type {t.name}",
                refresh_prefix,
            )
    pm = r.mapping(m.get("paths"), "oauth.paths", set(OAuthPaths.__dataclass_fields__))
    paths: dict[str, str] = {}
    for key in OAuthPaths.__dataclass_fields__:
        value = r.get(pm, key, "oauth.paths", str, getattr(OAuthPaths(), key))
        if _check_path_pattern(value, f"oauth.paths.{key}", r) and ("{" in value or "**" in value):
            r.error(f"oauth.paths.{key}", "must be a literal path", value)
        paths[key] = value
    issuer = r.get(m, "issuer", "oauth", str, None)
    if issuer is not None and not re.match(r"^https?://[^/\s?#]+[^\s?#]*$", issuer):
        r.error("oauth.issuer", "must be an http(s) URL without query or fragment", issuer)
    login_url = r.get(m, "login_url", "oauth", str, None)
    if login_url is not None and not re.match(r"^(https?://[^\s]+|/[^\s]*)$", login_url):
        r.error("oauth.login_url", "must be an http(s) URL or an absolute path", login_url)
    code_ttl = _duration(m.get("code_ttl"), "oauth.code_ttl", r, 600.0)
    if code_ttl > 600:
        r.error(
            "oauth.code_ttl",
            "must be at most 10 minutes (RFC 6749 section 4.1.2)",
            m.get("code_ttl"),
        )
    return OAuthConfig(
        access_token_type=tt_name or "",
        refresh_prefix=refresh_prefix or "gwrt_",
        issuer=issuer.rstrip("/") if issuer else None,
        paths=OAuthPaths(**paths),
        access_token_ttl=_duration(m.get("access_token_ttl"), "oauth.access_token_ttl", r, 3600.0),
        refresh_token_ttl=_duration(
            m.get("refresh_token_ttl"), "oauth.refresh_token_ttl", r, 30 * 86400.0
        ),
        code_ttl=code_ttl,
        refresh_reuse_grace=_duration(
            m.get("refresh_reuse_grace"), "oauth.refresh_reuse_grace", r, 30.0
        ),
        login_url=login_url,
    )


def oauth_routes(oauth: OAuthConfig, start: int) -> tuple[Route, ...]:
    """The routes of the authorization server's built-in endpoints."""
    p = oauth.paths
    specs: list[tuple[str, str, frozenset[str], bool, str, frozenset[str]]] = [
        (
            "oauth-consent",
            p.consent,
            frozenset({"GET", "POST"}),
            True,
            "oauth_consent",
            frozenset(),
        ),
        ("oauth-token", p.token, frozenset({"POST"}), True, "oauth_token", frozenset()),
        ("oauth-revoke", p.revoke, frozenset({"POST"}), True, "oauth_revoke", frozenset()),
        (
            "oauth-introspect",
            p.introspect,
            frozenset({"POST"}),
            True,
            "oauth_introspect",
            frozenset(),
        ),
        (
            "oauth-metadata",
            p.metadata,
            frozenset({"GET", "HEAD"}),
            True,
            "oauth_metadata",
            frozenset(),
        ),
        # A user's own grants: user credentials only (an OAuth app must not manage its grants).
        (
            "oauth-grants",
            p.grants,
            frozenset({"GET", "HEAD"}),
            False,
            "oauth_grants",
            frozenset({"session", "token"}),
        ),
        (
            "oauth-grant",
            p.grants.rstrip("/") + "/{grantId}",
            frozenset({"DELETE"}),
            False,
            "oauth_grants",
            frozenset({"session", "token"}),
        ),
    ]
    return tuple(
        Route(
            name=name,
            path=path,
            methods=methods,
            public=public,
            handler=handler,
            auth_methods=auth,
            max_body_bytes=64 * 1024,
            index=start + i,
        )
        for i, (name, path, methods, public, handler, auth) in enumerate(specs)
    )


LEAK_REVOKE_PATH = "/credentials/revoke"


def leak_routes(start: int) -> tuple[Route, ...]:
    """``POST /credentials/revoke``: anyone reports leaked tokens (:mod:`gateway.leaks`)."""
    return (
        Route(
            name="credentials-revoke",
            path=LEAK_REVOKE_PATH,
            methods=frozenset({"POST"}),
            public=True,
            handler="revoke_leaked",
            max_body_bytes=128 * 1024,  # 1,000 tokens; gateway.leaks.MAX_BODY
            index=start,
        ),
    )


SESSIONS_KEYS = {
    "algorithms",
    "issuer",
    "audience",
    "secret",
    "jwks_file",
    "jwks_url",
    "jwks_cooldown",
    "leeway",
    "roles",
    "cookie",
}


def _read_sessions(raw: Any, r: _Reader) -> SessionsConfig | None:
    m = r.mapping(raw, "sessions", SESSIONS_KEYS)
    algorithms = frozenset(_str_list(m.get("algorithms", ["HS256"]), "sessions.algorithms", r))
    if not algorithms:
        r.error("sessions.algorithms", "must list at least one algorithm")
    for alg in sorted(algorithms):
        if alg not in JWT_HMAC_ALGORITHMS | JWT_KEY_ALGORITHMS:
            r.error(
                "sessions.algorithms",
                f"must be among {sorted(JWT_HMAC_ALGORITHMS | JWT_KEY_ALGORITHMS)} ('none' never)",
                alg,
            )
    secret = r.get(m, "secret", "sessions", str, None) or None
    jwks_file = r.get(m, "jwks_file", "sessions", str, None) or None
    jwks_url = r.get(m, "jwks_url", "sessions", str, None) or None
    if algorithms & JWT_HMAC_ALGORITHMS:
        if secret is None:
            r.error("sessions.secret", "is required for HS* algorithms")
        else:
            # RFC 7518 §3.2: an HMAC key at least as long as the hash output.
            need = max(int(a[2:]) // 8 for a in algorithms & JWT_HMAC_ALGORITHMS)
            if len(secret.encode()) < need:
                r.error("sessions.secret", f"must be at least {need} bytes", "<hidden>")
    if algorithms & JWT_KEY_ALGORITHMS and not (jwks_file or jwks_url):
        r.error("sessions", "RS*/ES* algorithms need jwks_file or jwks_url")
    if jwks_file and jwks_url:
        r.error("sessions.jwks_url", "give jwks_file or jwks_url, not both", jwks_url)
    if jwks_url is not None:
        _url(jwks_url, "sessions.jwks_url", r)
    leeway = r.get(m, "leeway", "sessions", float, 10.0)
    if not 0 <= leeway <= 120:
        r.error("sessions.leeway", "must be between 0 and 120 seconds", leeway)
    cookie = r.get(m, "cookie", "sessions", str, None)
    if cookie is not None and not _HEADER_NAME.match(cookie):
        r.error("sessions.cookie", "must be a cookie name", cookie)
    return SessionsConfig(
        algorithms=algorithms,
        issuer=r.get(m, "issuer", "sessions", str) or "",
        audience=r.get(m, "audience", "sessions", str, "authenticated"),
        secret=secret,
        jwks_file=jwks_file,
        jwks_url=jwks_url,
        jwks_cooldown=_duration(m.get("jwks_cooldown"), "sessions.jwks_cooldown", r, 300.0),
        leeway=leeway,
        roles=frozenset(_str_list(m.get("roles", ["authenticated"]), "sessions.roles", r)),
        cookie=cookie,
    )


TOP_KEYS = {
    "listeners",
    "store",
    "token_types",
    "workspace",
    "upstreams",
    "routes",
    "scopes",
    "roles",
    "identity_headers",
    "cache",
    "errors",
    "trusted_proxies",
    "pepper",
    "reject_query_credentials",
    "operator_workspace",
    "limits",
    "dashboard",
    "oauth",
    "sessions",
    "rate_limits",
    "external_auth",
    "tracing",
}


def load_text(text: str, source: str = "<string>") -> Config:
    """Parse and validate config text; raise :class:`ConfigError` listing every problem."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [Problem("", f"is not valid YAML: {exc}")]) from None
    r = _Reader()
    doc = _interpolate(doc, "", r)
    top = r.mapping(doc, "", TOP_KEYS)

    lm = r.mapping(top.get("listeners"), "listeners", {"proxy", "admin", "metrics"})
    proxy = _listener(lm.get("proxy", "127.0.0.1:8080"), "listeners.proxy", r)
    admin = _listener(lm.get("admin"), "listeners.admin", r)
    metrics = _listener(lm.get("metrics"), "listeners.metrics", r)

    store, store_options = _read_store(top.get("store"), r)

    token_types = _read_token_types(top.get("token_types"), r)
    upstreams = _read_upstreams(top.get("upstreams"), r)
    routes = _read_routes(top.get("routes", []), r, upstreams)
    scopes = _read_scopes(top.get("scopes"), r)
    roles = _read_roles(top.get("roles"), r)
    _check_scope_references(routes, scopes, roles, r)

    em = r.mapping(top.get("errors"), "errors", {"envelope"})
    envelope = r.get(em, "envelope", "errors", str, "default")
    if envelope not in {"default", "velt"}:
        r.error("errors.envelope", "must be default or velt", envelope)
        envelope = "default"

    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for i, net in enumerate(_str_list(top.get("trusted_proxies"), "trusted_proxies", r)):
        try:
            trusted.append(ipaddress.ip_network(net, strict=False))
        except ValueError:
            r.error(f"trusted_proxies[{i}]", "must be an IP address or CIDR network", net)

    workspace = _read_workspace(top.get("workspace"), r)
    identity_headers = _read_identity_headers(top.get("identity_headers"), r)
    cache = _read_cache(top.get("cache"), r)
    pepper = r.get(top, "pepper", "", str, None) or None
    reject_query = _str_list(
        top.get("reject_query_credentials", ["access_token", "api_key", "token"]),
        "reject_query_credentials",
        r,
    )

    operator_workspace = r.get(top, "operator_workspace", "", str, None)
    limits = _read_limits(top.get("limits"), r)
    dashboard = _read_dashboard(top.get("dashboard"), r, pepper, admin, token_types)
    oauth = _read_oauth(top.get("oauth"), r, token_types) if "oauth" in top else None
    sessions = _read_sessions(top.get("sessions"), r) if "sessions" in top else None
    if oauth is not None:
        # The authorization server's endpoints are ordinary routes (public ones authenticate the
        # client or the signed-in user themselves), so deny-by-default and path checks apply.
        routes = routes + oauth_routes(oauth, len(routes))
    # Leaked-token revocation (issue 17 §7): public, on every gateway (gateway/leaks.py).
    routes = routes + leak_routes(len(routes))
    _warn_shadowed(routes, r)
    _check_type_routes(token_types, routes, r)
    if any(tt.client_certificate for tt in token_types) and (
        proxy is None or proxy.tls is None or proxy.tls.client_auth == "none"
    ):
        r.error(
            "token_types",
            "a client_certificate type needs listeners.proxy.tls with client_auth optional or "
            "required (nothing would ever present a certificate)",
        )
    rate_limits = _read_rate_limits(top.get("rate_limits"), r, routes, token_types)
    external_auth = _read_external_auth(top.get("external_auth"), r, trusted)
    tracing = _read_tracing(top.get("tracing"), r)

    if any(not p.warning for p in r.problems):
        raise ConfigError(source, r.problems)
    assert proxy is not None
    return Config(
        source=source,
        proxy=proxy,
        admin=admin,
        metrics=metrics,
        store=store,
        token_types=token_types,
        workspace=workspace,
        upstreams=upstreams,
        routes=routes,
        scopes=scopes,
        roles=roles,
        identity_headers=identity_headers,
        cache=cache,
        envelope=envelope,
        trusted_proxies=tuple(trusted),
        pepper=pepper,
        reject_query_credentials=tuple(reject_query),
        warnings=tuple(p for p in r.problems if p.warning),
        operator_workspace=operator_workspace,
        limits=limits,
        dashboard=dashboard,
        oauth=oauth,
        sessions=sessions,
        store_options=store_options,
        rate_limits=rate_limits,
        external_auth=external_auth,
        tracing=tracing,
    )


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate the config file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [Problem("", f"cannot be read: {exc.strerror}")]) from None
    return load_text(text, str(p))


def iter_problems(exc: ConfigError) -> Iterator[str]:
    for p in exc.problems:
        yield p.render(exc.source)

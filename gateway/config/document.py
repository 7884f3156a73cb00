"""The shape of ``gateway.yaml``: pydantic models, one per section, with every key's type, default
and single-key rule. The JSON Schema editors use is generated from them (``gateway config-schema``).

Unknown keys are refused everywhere (``extra="forbid"``). A key given as ``null`` means "not given"
(its default applies) except where ``null`` has a meaning of its own (``_nullable``). Defaults that
the runtime dataclasses also carry are read from them (:func:`~gateway.config.fields.default_of`),
so each is stated once. Rules that span sections (a route naming an upstream, a token type naming a
route) are checked by :mod:`gateway.config.build`, which also builds the runtime objects.

One module on purpose (over 400 lines): it is the reference of ``gateway.yaml``, one section after
another in the file's order, so a key is looked up in one place; the shared value types live in
:mod:`gateway.config.fields`.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from gateway.config.fields import (
    PREFIX,
    Bool,
    CookieName,
    Float,
    HeaderName,
    Int,
    Positive,
    ReadableFile,
    Seconds,
    Section,
    StrList,
    Text,
    Url,
    check,
    default_of,
    http_url,
    literal_path,
    one_or_many,
    route_path,
)
from gateway.config.problems import invalid
from gateway.config.runtime import (
    DEFAULT_CIPHERS,
    EXPLICIT_METHODS,
    HTTP_METHODS,
    JWT_HMAC_ALGORITHMS,
    JWT_KEY_ALGORITHMS,
    RATE_LIMIT_DIMENSIONS,
    CacheConfig,
    DashboardConfig,
    ExternalAuthConfig,
    HealthCheck,
    IdentityHeaders,
    LimitsConfig,
    OAuthConfig,
    OAuthPaths,
    RateLimits,
    Route,
    SessionsConfig,
    StoreOptions,
    TargetHealth,
    TokenType,
    TracingConfig,
    Upstream,
    UpstreamTLS,
    WorkspaceSource,
)

__all__ = ["Document"]

_SCOPE = re.compile(r"^[A-Za-z0-9_.:*-]+$")
_STORE_URL = re.compile(r"^(sqlite:///|sqlite://:memory:|postgres(ql)?://)")
_ABSOLUTE_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
_BASE_URL = re.compile(r"^https?://[^/?#\s]+(/[^?#\s]*)?$")
_ISSUER = re.compile(r"^https?://[^/\s?#]+[^\s?#]*$")
_LOGIN_URL = re.compile(r"^(https?://[^\s]+|/[^\s]*)$")
_RULE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


# -- listeners ---------------------------------------------------------------------------------------


def _ciphers(value: str) -> str:
    try:
        ssl.create_default_context().set_ciphers(value)
    except ssl.SSLError:
        raise invalid("names no cipher this OpenSSL offers", value) from None
    return value


class ServerTLSDoc(Section):
    """``listeners.*.tls``: the certificate a listener serves, and what it asks of clients."""

    cert_file: ReadableFile
    key_file: ReadableFile
    min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    ciphers: Annotated[str, AfterValidator(_ciphers)] = DEFAULT_CIPHERS
    client_ca_file: ReadableFile | None = None
    client_auth: Literal["none", "optional", "required"] = "none"

    @model_validator(mode="after")
    def _ca_for_client_auth(self) -> ServerTLSDoc:
        if self.client_auth != "none" and self.client_ca_file is None:
            raise invalid(f"is required with client_auth: {self.client_auth}", at=".client_ca_file")
        return self


def parse_address(text: str) -> tuple[str, int] | None:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


_ADDRESS = "must be HOST:PORT with a port from 0 to 65535"


class ListenerDoc(Section):
    """A listener: ``HOST:PORT``, or ``{address: HOST:PORT, tls: {...}}`` for HTTPS (issue 22)."""

    address: Annotated[str, check(parse_address, _ADDRESS)]
    tls: ServerTLSDoc | None = None


def _listener(value: Any) -> Any:
    if isinstance(value, str | int) and not isinstance(value, bool):
        if parse_address(str(value)) is None:
            raise invalid(_ADDRESS, value)
        return {"address": str(value)}
    return value


ListenerField = Annotated[
    ListenerDoc, BeforeValidator(_listener, json_schema_input_type=str | ListenerDoc)
]


class ListenersDoc(Section):
    proxy: ListenerField = Field(default="127.0.0.1:8080", validate_default=True)
    admin: ListenerField | None = None
    metrics: ListenerField | None = None


# -- store -------------------------------------------------------------------------------------------

_STORE_URL_MESSAGE = "must be sqlite:///PATH or postgresql://…"


class StoreDoc(Section):
    """``store:``: a URL, or a mapping with ``url`` and how store outages are treated."""

    url: Annotated[str, check(_STORE_URL.match, _STORE_URL_MESSAGE)] = "sqlite:///gateway.db"
    outage_grace: Annotated[Float, check(lambda v: v >= 0, "must be zero or positive")] = (
        default_of(StoreOptions, "outage_grace")
    )
    connect_timeout: Annotated[Float, check(lambda v: v > 0, "must be positive")] = default_of(
        StoreOptions, "connect_timeout"
    )
    query_timeout: Annotated[Float, check(lambda v: v > 0, "must be positive")] = default_of(
        StoreOptions, "query_timeout"
    )
    lookup_timeout: Annotated[Float, check(lambda v: v > 0, "must be positive")] = default_of(
        StoreOptions, "lookup_timeout"
    )
    probe_interval: Annotated[Float, check(lambda v: v > 0, "must be positive")] = default_of(
        StoreOptions, "probe_interval"
    )


def _store(value: Any) -> Any:
    if isinstance(value, str):
        if value and not _STORE_URL.match(value):
            raise invalid(_STORE_URL_MESSAGE, value)
        return {"url": value}
    return value


# -- token types and workspace -----------------------------------------------------------------------


class CredentialDoc(Section):
    """Where a token is read: a header, with a scheme or (``scheme: null``) the raw value."""

    _nullable = frozenset({"scheme"})
    header: HeaderName = "Authorization"
    scheme: str | None = Field(
        default=None, description="default: Bearer for the Authorization header, else none"
    )

    def resolved_scheme(self) -> str | None:
        if "scheme" in self.model_fields_set:
            return self.scheme
        return "Bearer" if self.header == "Authorization" else None


class TokenTypeDoc(Section):
    name: str | None = Field(default=None, description="default: the prefix")
    prefix: Annotated[
        str, check(PREFIX.fullmatch, "must be lowercase letters/digits ending in '_'")
    ]
    kind: Literal["api_key", "pat", "oauth_access", "workspace_key"] = "api_key"
    environment: str = "live"
    credential: CredentialDoc = CredentialDoc()
    inherit_user_permissions: Bool = default_of(TokenType, "inherit_user_permissions")
    plans: StrList = []
    routes: StrList = []
    require_allowed_domains: Bool = default_of(TokenType, "require_allowed_domains")
    client_certificate: Bool = default_of(TokenType, "client_certificate")

    @model_validator(mode="after")
    def _certificate_not_header(self) -> TokenTypeDoc:
        if self.client_certificate and "credential" in self.model_fields_set:
            raise invalid("a client_certificate type is not read from a header", at=".credential")
        return self


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise invalid(f"is not a valid regular expression: {exc}", value) from None
    return value


class WorkspaceDoc(Section):
    source: Literal["header", "host", "token"] = default_of(WorkspaceSource, "source")
    header: HeaderName | None = None
    match: Literal["id", "slug", "any"] = default_of(WorkspaceSource, "match")
    required: Bool = default_of(WorkspaceSource, "required")
    pattern: Annotated[str, AfterValidator(_regex)] | None = None
    host_suffix: str | None = None
    id_format: Literal["prefixed", "objectid"] = default_of(WorkspaceSource, "id_format")

    @model_validator(mode="after")
    def _header_for_header_source(self) -> WorkspaceDoc:
        if self.source == "header" and self.header is None:
            raise invalid("must be an HTTP header name", None, at=".header")
        return self


# -- upstreams ---------------------------------------------------------------------------------------


class UpstreamTLSDoc(Section):
    """``upstreams.*.tls``: how an ``https`` upstream is verified, and the certificate shown to it."""

    ca_file: ReadableFile | None = None
    cert_file: ReadableFile | None = None
    key_file: ReadableFile | None = None
    server_name: str | None = None
    verify: Bool = default_of(UpstreamTLS, "verify")

    @model_validator(mode="after")
    def _pair(self) -> UpstreamTLSDoc:
        if (self.cert_file is None) != (self.key_file is None):
            raise invalid("cert_file and key_file go together (the client certificate and its key)")
        return self


class HealthCheckDoc(Section):
    path: Annotated[str, check(lambda v: v.startswith("/"), "must start with '/'")] = default_of(
        HealthCheck, "path"
    )
    interval: Seconds = default_of(HealthCheck, "interval")
    timeout: Seconds = default_of(HealthCheck, "timeout")
    healthy: Positive = default_of(HealthCheck, "healthy")
    unhealthy: Positive = default_of(HealthCheck, "unhealthy")


class HealthDoc(Section):
    max_failures: Positive = default_of(TargetHealth, "max_failures")
    backoff: Seconds = default_of(TargetHealth, "backoff")
    check: HealthCheckDoc | None = None


def _targets(urls: list[str]) -> list[str]:
    if not urls:
        raise invalid("must be a non-empty list of URLs", urls)
    for i, url in enumerate(urls):
        if "@" in url.split("://", 1)[1].split("/", 1)[0]:
            # Target URLs label metrics and log lines: keep credentials out of them.
            raise invalid("must not carry user:password credentials", at=f"[{i}]")
        if url in urls[:i]:
            raise invalid("is listed twice", url, at=f"[{i}]")
    return urls


def _environment_url(value: str) -> str:
    # An unset ${SANDBOX_UPSTREAM_URL:-} means "no such environment".
    return value if value == "" else http_url(value)


class UpstreamDoc(Section):
    """An upstream: ``url`` (one target) or ``targets`` (several), exactly one of them."""

    url: Url | None = None
    targets: Annotated[list[Url], AfterValidator(_targets)] | None = None
    environments: dict[str, Annotated[str, AfterValidator(_environment_url)] | None] = {}
    balance: Literal["round_robin", "least_connections"] = default_of(Upstream, "balance")
    tls: UpstreamTLSDoc | None = None
    health: HealthDoc = HealthDoc()
    connect_timeout: Float = default_of(Upstream, "connect_timeout")
    timeout: Float = default_of(Upstream, "timeout")
    max_connections: (
        Annotated[Int, check(lambda v: v > 0, "must be a positive number (or left out for no cap)")]
        | None
    ) = None

    @model_validator(mode="after")
    def _one_source(self) -> UpstreamDoc:
        if (self.url is None) == (self.targets is None):
            raise invalid("needs exactly one of url or targets")
        urls = [*(self.targets or [self.url or ""]), *(u for u in self.environments.values() if u)]
        if self.tls is not None and not any(u.startswith("https://") for u in urls):
            raise invalid("is set but no URL of this upstream is https://", at=".tls")
        return self


def _upstream(value: Any) -> Any:
    return {"url": value} if isinstance(value, str) else value


UpstreamField = Annotated[
    UpstreamDoc, BeforeValidator(_upstream, json_schema_input_type=str | UpstreamDoc)
]


# -- routes and scopes -------------------------------------------------------------------------------


def _methods(listed: list[str]) -> list[str]:
    out = [m.upper() for m in listed]
    for meth in out:
        if meth not in HTTP_METHODS and meth not in EXPLICIT_METHODS:
            raise invalid(f"unknown HTTP method {meth}", meth)
    return out


AUTH_METHODS = ("token", "session", "oauth", "certificate")


def _auth_methods(listed: list[str]) -> list[str]:
    for am in listed:
        if am not in AUTH_METHODS:
            raise invalid("must list token, session, oauth or certificate", am)
    return listed


class ScopeSpecDoc(Section):
    any_of: StrList = []
    all_of: StrList = []


def _scope_spec(value: Any) -> Any:
    return {"all_of": value} if isinstance(value, str | list) else value


class RouteDoc(Section):
    name: str | None = Field(default=None, description="default: route<N>, N its position")
    path: Annotated[str, AfterValidator(route_path)]
    methods: Annotated[StrList, AfterValidator(_methods)] | None = None
    upstream: str | None = Field(default=None, description="default: the only upstream")
    scopes: Annotated[
        ScopeSpecDoc,
        BeforeValidator(_scope_spec, json_schema_input_type=str | list[str] | ScopeSpecDoc),
    ] = ScopeSpecDoc()
    public: Bool = default_of(Route, "public")
    strip_prefix: str | None = None
    add_prefix: str | None = None
    keep_credential: Bool = default_of(Route, "keep_credential")
    handler: str | None = None
    auth_methods: Annotated[StrList, AfterValidator(_auth_methods)] = []
    max_body_bytes: Int | None = None
    method_override: Bool = default_of(Route, "method_override")
    tags: StrList = []
    require_client_certificate: Bool = default_of(Route, "require_client_certificate")

    @model_validator(mode="after")
    def _consistent(self) -> RouteDoc:
        required = self.scopes.any_of or self.scopes.all_of
        if self.public and required:
            raise invalid("a public route cannot require scopes", required, at=".scopes")
        if self.strip_prefix is not None and not self.path.startswith(self.strip_prefix):
            raise invalid(
                "must be a prefix of the route path", self.strip_prefix, at=".strip_prefix"
            )
        return self


Scope = Annotated[Text, check(_SCOPE.match, "a scope may hold letters, digits and . : _ * -")]


class ScopesDoc(Section):
    """``known`` (empty: any), the superuser scope (``null``: none), implications."""

    _nullable = frozenset({"superuser"})
    known: Annotated[
        list[Scope], BeforeValidator(one_or_many, json_schema_input_type=str | list[str])
    ] = []
    superuser: str | None = "admin:all"
    implies: dict[str, StrList] = {}


class IdentityHeadersDoc(Section):
    token_id: HeaderName = default_of(IdentityHeaders, "token_id")
    user_id: HeaderName = default_of(IdentityHeaders, "user_id")
    workspace_id: HeaderName = default_of(IdentityHeaders, "workspace_id")
    workspace_slug: HeaderName = default_of(IdentityHeaders, "workspace_slug")
    scopes: HeaderName = default_of(IdentityHeaders, "scopes")
    auth_method: HeaderName = default_of(IdentityHeaders, "auth_method")
    environment: HeaderName = default_of(IdentityHeaders, "environment")


class ErrorsDoc(Section):
    envelope: Literal["default", "velt"] = "default"


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise invalid("must be an IP address or CIDR network", value) from None
    return value


# -- cache and limits --------------------------------------------------------------------------------

_POSITIVE = "must be positive"
PositiveInt = Annotated[Int, check(lambda v: v > 0, _POSITIVE)]
PositiveFloat = Annotated[Float, check(lambda v: v > 0, _POSITIVE)]


class CacheDoc(Section):
    size: PositiveInt = default_of(CacheConfig, "size")
    ttl: Float = default_of(CacheConfig, "ttl")
    negative_size: PositiveInt = default_of(CacheConfig, "negative_size")
    negative_ttl: Float = default_of(CacheConfig, "negative_ttl")
    poll_interval: Annotated[
        Float, check(lambda v: 0 < v <= 1.0, "must be in (0, 1] so changes land within a second")
    ] = default_of(CacheConfig, "poll_interval")
    usage_flush_interval: Float = default_of(CacheConfig, "usage_flush_interval")


class LimitsDoc(Section):
    shutdown_grace: PositiveFloat = default_of(LimitsConfig, "shutdown_grace")
    request_timeout: PositiveFloat = default_of(LimitsConfig, "request_timeout")
    max_body_bytes: PositiveInt | None = default_of(LimitsConfig, "max_body_bytes")
    max_header_bytes: PositiveInt = default_of(LimitsConfig, "max_header_bytes")
    max_line_bytes: PositiveInt = default_of(LimitsConfig, "max_line_bytes")
    max_headers: PositiveInt = default_of(LimitsConfig, "max_headers")
    idle_timeout: PositiveFloat = default_of(LimitsConfig, "idle_timeout")
    max_connections: PositiveInt | None = default_of(LimitsConfig, "max_connections")
    body_read_timeout: PositiveFloat = default_of(LimitsConfig, "body_read_timeout")


# -- dashboard, OAuth, session JWTs ------------------------------------------------------------------


class DashboardDoc(Section):
    """The token dashboard (Settings -> API Keys), served by the gateway itself."""

    path: Annotated[
        str,
        check(
            lambda v: _ABSOLUTE_PATH.match(v) and not {".", ".."} & set(v.split("/")),
            "must be an absolute path like /settings/api-keys",
        ),
    ] = default_of(DashboardConfig, "path")
    listener: Literal["proxy", "admin"] = default_of(DashboardConfig, "listener")
    secret: str = Field(default="", description="default: the pepper; empty: dashboard off")
    public_url: (
        Annotated[str, check(_BASE_URL.match, "must be an http(s) URL without query")] | None
    ) = None
    login_url: (
        Annotated[
            str,
            check(
                lambda v: _BASE_URL.match(v) or v.startswith("/"),
                "must be an http(s) URL or an absolute path",
            ),
        ]
        | None
    ) = None
    session_ttl: Annotated[
        Float,
        check(lambda v: 0 < v <= 30 * 86400, "must be between 0 and 30 days (in seconds)"),
    ] = default_of(DashboardConfig, "session_ttl")
    session_jwt_cookie: CookieName = default_of(DashboardConfig, "session_jwt_cookie")
    token_types: StrList = []


LiteralPath = Annotated[str, AfterValidator(literal_path)]


class OAuthPathsDoc(Section):
    consent: LiteralPath = default_of(OAuthPaths, "consent")
    token: LiteralPath = default_of(OAuthPaths, "token")
    revoke: LiteralPath = default_of(OAuthPaths, "revoke")
    introspect: LiteralPath = default_of(OAuthPaths, "introspect")
    metadata: LiteralPath = default_of(OAuthPaths, "metadata")
    grants: LiteralPath = default_of(OAuthPaths, "grants")


class OAuthDoc(Section):
    """The OAuth 2.0 authorization server (issue 5)."""

    access_token_type: str | None = Field(
        default=None, description="default: the first token type with kind oauth_access"
    )
    refresh_prefix: Annotated[
        str, check(PREFIX.fullmatch, "must be lowercase letters/digits ending in '_'")
    ] = default_of(OAuthConfig, "refresh_prefix")
    issuer: (
        Annotated[str, check(_ISSUER.match, "must be an http(s) URL without query or fragment")]
        | None
    ) = None
    paths: OAuthPathsDoc = OAuthPathsDoc()
    access_token_ttl: Seconds = default_of(OAuthConfig, "access_token_ttl")
    refresh_token_ttl: Seconds = default_of(OAuthConfig, "refresh_token_ttl")
    code_ttl: Annotated[
        Seconds, check(lambda v: v <= 600, "must be at most 10 minutes (RFC 6749 section 4.1.2)")
    ] = default_of(OAuthConfig, "code_ttl")
    refresh_reuse_grace: Seconds = default_of(OAuthConfig, "refresh_reuse_grace")
    login_url: (
        Annotated[str, check(_LOGIN_URL.match, "must be an http(s) URL or an absolute path")] | None
    ) = None


_ALGORITHMS = sorted(JWT_HMAC_ALGORITHMS | JWT_KEY_ALGORITHMS)
Algorithm = Annotated[
    Text, check(lambda v: v in _ALGORITHMS, f"must be among {_ALGORITHMS} ('none' never)")
]


class SessionsDoc(Section):
    """Session JWTs (Supabase-style) verified with PyJWT; see :mod:`gateway.features.sessionjwt`."""

    algorithms: Annotated[
        list[Algorithm],
        BeforeValidator(one_or_many, json_schema_input_type=str | list[str]),
        check(bool, "must list at least one algorithm"),
    ] = ["HS256"]
    issuer: str
    audience: str = default_of(SessionsConfig, "audience")
    secret: str | None = None
    jwks_file: str | None = None
    jwks_url: Url | None = None
    jwks_cooldown: Seconds = default_of(SessionsConfig, "jwks_cooldown")
    leeway: Annotated[
        Float, check(lambda v: 0 <= v <= 120, "must be between 0 and 120 seconds")
    ] = default_of(SessionsConfig, "leeway")
    roles: StrList = ["authenticated"]
    cookie: CookieName | None = None

    @model_validator(mode="after")
    def _keys(self) -> SessionsDoc:
        algorithms = set(self.algorithms)
        if algorithms & JWT_HMAC_ALGORITHMS:
            if not self.secret:
                raise invalid("is required for HS* algorithms", at=".secret")
            # RFC 7518 §3.2: an HMAC key at least as long as the hash output.
            need = max(int(a[2:]) // 8 for a in algorithms & JWT_HMAC_ALGORITHMS)
            if len(self.secret.encode()) < need:
                raise invalid(f"must be at least {need} bytes", "<hidden>", at=".secret")
        if algorithms & JWT_KEY_ALGORITHMS and not (self.jwks_file or self.jwks_url):
            raise invalid("RS*/ES* algorithms need jwks_file or jwks_url")
        if self.jwks_file and self.jwks_url:
            raise invalid("give jwks_file or jwks_url, not both", self.jwks_url, at=".jwks_url")
        return self


# -- rate limits -------------------------------------------------------------------------------------

_DIMENSIONS = ", ".join(RATE_LIMIT_DIMENSIONS)


def _per(listed: list[str]) -> list[str]:
    for dim in listed:
        if dim not in RATE_LIMIT_DIMENSIONS:
            raise invalid(f"must name {_DIMENSIONS}", dim)
    if not listed:
        raise invalid(f"must name at least one of {_DIMENSIONS}")
    return listed


class RateRuleDoc(Section):
    """At most ``limit`` requests in any ``window`` seconds per distinct value of ``per``."""

    name: (
        Annotated[
            str,
            check(_RULE_NAME.fullmatch, "may hold letters, digits and . : _ - (up to 64)"),
        ]
        | None
    ) = Field(default=None, description="default: rule<N>, N its position")
    limit: Annotated[Int, check(lambda v: v > 0, "must be a positive integer")]
    window: Annotated[Float, check(lambda v: v > 0, "must be a positive number of seconds")] = 60.0
    per: Annotated[StrList, AfterValidator(_per)] = ["token"]
    token_types: StrList = []
    routes: StrList = []


def _per_address(value: Any) -> Any:
    return {**value, "per": ["address"]} if isinstance(value, dict) else value


class RateLimitsDoc(Section):
    rules: list[RateRuleDoc] = []
    redis: (
        Annotated[
            str,
            check(
                lambda v: not v or re.match(r"^(redis|rediss|unix)://", v),
                "must be a redis://, rediss:// or unix:// URL",
            ),
        ]
        | None
    ) = default_of(RateLimits, "redis")
    on_redis_error: Literal["fail_open", "fail_closed"] = default_of(RateLimits, "on_redis_error")
    key_prefix: str = default_of(RateLimits, "key_prefix")
    # Counted per client address, whatever ``per`` says.
    failed_auth: Annotated[RateRuleDoc, BeforeValidator(_per_address)] | None = None


# -- external authorization (issue 19) and tracing (issue 21) ---------------------------------------


class ExternalAuthDoc(Section):
    path: Annotated[
        str,
        check(
            lambda v: _ABSOLUTE_PATH.match(v) and not {".", ".."} & set(v.split("/")),
            "must be an absolute path like /_gateway/authz",
        ),
    ] = default_of(ExternalAuthConfig, "path")
    listener: ListenerField | None = None
    # Proxies count cache lifetimes in whole seconds; anything longer would break the promise
    # that a revoked token is refused everywhere within a second.
    cache_seconds: Annotated[Int, check(lambda v: v in (0, 1), "must be 0 or 1")] = default_of(
        ExternalAuthConfig, "cache_seconds"
    )


class TracingDoc(Section):
    endpoint: Url
    service_name: str = default_of(TracingConfig, "service_name")
    sampling_ratio: Annotated[
        Float, check(lambda v: 0.0 <= v <= 1.0, "must be between 0 and 1")
    ] = default_of(TracingConfig, "sampling_ratio")
    queue_size: Annotated[
        Int, check(lambda v: 1 <= v <= 1_000_000, "must be between 1 and 1000000")
    ] = default_of(TracingConfig, "queue_size")
    timeout: Annotated[Float, check(lambda v: 0 < v <= 60, "must be between 0 and 60 seconds")] = (
        default_of(TracingConfig, "timeout")
    )


# -- the document ------------------------------------------------------------------------------------

# Validation context of the second, lenient round (gateway.config.loader): what the first round
# refused has been set aside, and an emptied ``upstreams`` is not reported twice.
LENIENT = {"lenient": True}


def _some_upstream(value: dict[str, UpstreamDoc], info: ValidationInfo) -> dict[str, UpstreamDoc]:
    if not value and not (info.context or {}).get("lenient"):
        raise invalid("must be a non-empty mapping of name to upstream", value)
    return value


class Document(Section):
    """``gateway.yaml``."""

    model_config = ConfigDict(title="gateway.yaml")

    listeners: ListenersDoc = ListenersDoc()
    store: Annotated[StoreDoc, BeforeValidator(_store, json_schema_input_type=str | StoreDoc)] = (
        StoreDoc()
    )
    token_types: list[TokenTypeDoc] = Field(
        default=[{"name": "api_key", "prefix": "gw_", "kind": "api_key"}], validate_default=True
    )
    workspace: WorkspaceDoc = WorkspaceDoc()
    upstreams: Annotated[dict[str, UpstreamField], AfterValidator(_some_upstream)]
    routes: list[RouteDoc] = []
    scopes: ScopesDoc = ScopesDoc()
    roles: dict[str, StrList] = {"owner": ["admin:all"], "admin": ["admin:all"]}
    identity_headers: IdentityHeadersDoc = IdentityHeadersDoc()
    cache: CacheDoc = CacheDoc()
    errors: ErrorsDoc = ErrorsDoc()
    trusted_proxies: Annotated[
        list[Annotated[Text, AfterValidator(_network)]],
        BeforeValidator(one_or_many, json_schema_input_type=str | list[str]),
    ] = []
    pepper: str | None = None
    reject_query_credentials: StrList = ["access_token", "api_key", "token"]
    # Tokens with the superuser scope in this workspace (slug or id) administer every workspace.
    operator_workspace: str | None = None
    limits: LimitsDoc = LimitsDoc()
    dashboard: DashboardDoc | None = None
    oauth: OAuthDoc | None = None
    sessions: SessionsDoc | None = None
    rate_limits: RateLimitsDoc = RateLimitsDoc()
    external_auth: ExternalAuthDoc | None = None
    tracing: TracingDoc | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_are_on(cls, data: Any) -> Any:
        # `oauth:` and `sessions:` with nothing under them turn the feature on with its defaults.
        if isinstance(data, dict):
            return {
                k: {} if v is None and k in ("oauth", "sessions") else v for k, v in data.items()
            }
        return data

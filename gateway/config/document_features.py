"""``gateway.yaml``'s feature sections, one per package of :mod:`gateway.features` that has keys:
``dashboard``, ``oauth``, ``sessions`` (session JWTs), ``rate_limits``, ``external_auth`` and
``tracing``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    model_validator,
)

from gateway.config.document_edge import ListenerField
from gateway.config.fields import (
    PREFIX,
    CookieName,
    Float,
    Int,
    Seconds,
    Section,
    StrList,
    Text,
    Url,
    check,
    default_of,
    literal_path,
    one_or_many,
)
from gateway.config.problems import invalid
from gateway.config.runtime_features import (
    JWT_HMAC_ALGORITHMS,
    JWT_KEY_ALGORITHMS,
    RATE_LIMIT_DIMENSIONS,
    DashboardConfig,
    ExternalAuthConfig,
    OAuthConfig,
    OAuthPaths,
    RateLimits,
    SessionsConfig,
    TracingConfig,
)

__all__ = [
    "DashboardDoc",
    "ExternalAuthDoc",
    "OAuthDoc",
    "OAuthPathsDoc",
    "RateLimitsDoc",
    "RateRuleDoc",
    "SessionsDoc",
    "TracingDoc",
]

_ABSOLUTE_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
_BASE_URL = re.compile(r"^https?://[^/?#\s]+(/[^?#\s]*)?$")
_ISSUER = re.compile(r"^https?://[^/\s?#]+[^\s?#]*$")
_LOGIN_URL = re.compile(r"^(https?://[^\s]+|/[^\s]*)$")
_RULE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


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

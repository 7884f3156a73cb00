"""``gateway.yaml``: its model, its validation, and the config the gateway runs on.

    document.py  the file's shape as pydantic models (types, defaults, one-key rules); the JSON
                 Schema (``gateway config-schema``, config/gateway.schema.json) comes from it
    loader.py    load(): ${VAR} substitution, validation that reports every problem at once
    build.py     the rules across sections, and the runtime Config built from a valid document
    fields.py    the shared value types of the model (durations, header names, URLs, …)
    runtime.py   the frozen, slotted dataclasses the request path reads (Config and its parts)
    problems.py  Problem / ConfigError, and pydantic's errors said as ``path: message (got value)``
    schema.py    the JSON Schema document

Everything the rest of the gateway uses is importable from ``gateway.config``.
"""

from gateway.config.build import LEAK_REVOKE_PATH, leak_routes
from gateway.config.loader import load, load_text
from gateway.config.problems import ConfigError, Problem
from gateway.config.runtime import (
    EXPLICIT_METHODS,
    HTTP_METHODS,
    JWT_HMAC_ALGORITHMS,
    JWT_KEY_ALGORITHMS,
    CacheConfig,
    Config,
    CredentialSource,
    DashboardConfig,
    ExternalAuthConfig,
    HealthCheck,
    IdentityHeaders,
    LimitsConfig,
    Listener,
    OAuthConfig,
    OAuthPaths,
    RateLimitRule,
    RateLimits,
    Route,
    ScopeRules,
    ServerTLS,
    SessionsConfig,
    StoreOptions,
    TargetHealth,
    TokenType,
    TracingConfig,
    Upstream,
    UpstreamTLS,
    WorkspaceSource,
)

__all__ = [
    "EXPLICIT_METHODS",
    "HTTP_METHODS",
    "JWT_HMAC_ALGORITHMS",
    "JWT_KEY_ALGORITHMS",
    "LEAK_REVOKE_PATH",
    "CacheConfig",
    "Config",
    "ConfigError",
    "CredentialSource",
    "DashboardConfig",
    "ExternalAuthConfig",
    "HealthCheck",
    "IdentityHeaders",
    "LimitsConfig",
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
    "leak_routes",
    "load",
    "load_text",
]

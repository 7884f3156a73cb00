"""``gateway.yaml``: its model, its validation, and the config the gateway runs on.

    document.py  the file's shape as pydantic models (types, defaults, one-key rules); the JSON
                 Schema (``gateway config-schema``, config/gateway.schema.json) comes from it
    loader.py    load(): ${VAR} substitution, validation that reports every problem at once
    build.py     the rules across sections, and the runtime Config built from a valid document
    fields.py    the shared value types of the model (durations, header names, URLs, …)
    runtime.py   the frozen, slotted dataclasses the request path reads (Config and its parts)
    problems.py  Problem / ConfigError, and pydantic's errors said as ``path: message (got value)``
    schema.py    the JSON Schema document

document, build and runtime each keep the whole (Document, build(), Config) in the module named
above and the sections in one module per group, named after the part of the gateway that reads
them: ``*_edge`` (listeners, limits, errors, trusted_proxies), ``*_store`` (store, cache),
``*_auth`` (token_types, workspace, scopes, identity_headers), ``*_routing`` (upstreams, routes)
and ``*_features`` (dashboard, oauth, sessions, rate_limits, external_auth, tracing). Sections that
build() only copies have no ``build_*`` module of their own.

Everything the rest of the gateway uses is importable from ``gateway.config``.
"""

from gateway.config.build_routing import LEAK_REVOKE_PATH, leak_routes
from gateway.config.loader import load, load_text
from gateway.config.problems import ConfigError, Problem
from gateway.config.runtime import Config
from gateway.config.runtime_auth import (
    CredentialSource,
    IdentityHeaders,
    ScopeRules,
    TokenType,
    WorkspaceSource,
)
from gateway.config.runtime_edge import LimitsConfig, Listener, ServerTLS
from gateway.config.runtime_features import (
    JWT_HMAC_ALGORITHMS,
    JWT_KEY_ALGORITHMS,
    DashboardConfig,
    ExternalAuthConfig,
    OAuthConfig,
    OAuthPaths,
    RateLimitRule,
    RateLimits,
    SessionsConfig,
    TracingConfig,
)
from gateway.config.runtime_routing import (
    EXPLICIT_METHODS,
    HTTP_METHODS,
    HealthCheck,
    Route,
    TargetHealth,
    Upstream,
    UpstreamTLS,
)
from gateway.config.runtime_store import CacheConfig, StoreOptions

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

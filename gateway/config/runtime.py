"""The runtime form of the config: :class:`Config`, the frozen, slotted dataclass the request path
reads, made of the parts defined next to it, one module per group of sections:

    runtime_edge.py      Listener, ServerTLS, LimitsConfig
    runtime_store.py     StoreOptions, CacheConfig
    runtime_auth.py      TokenType, CredentialSource, WorkspaceSource, ScopeRules, IdentityHeaders
    runtime_routing.py   Upstream (UpstreamTLS, TargetHealth, HealthCheck), Route
    runtime_features.py  DashboardConfig, OAuthConfig, SessionsConfig, RateLimits, ExternalAuthConfig,
                         TracingConfig

:mod:`gateway.config.document` validates ``gateway.yaml`` into pydantic models; the loader then builds
these from it (derived values such as a route's index, a listener's parsed address, the closure of
scope implications are computed once there). The hot path only ever touches these objects: plain
slotted attribute reads, no validation machinery.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.problems import Problem
from gateway.config.runtime_auth import IdentityHeaders, ScopeRules, TokenType, WorkspaceSource
from gateway.config.runtime_edge import LimitsConfig, Listener
from gateway.config.runtime_features import (
    DashboardConfig,
    ExternalAuthConfig,
    OAuthConfig,
    RateLimits,
    SessionsConfig,
    TracingConfig,
)
from gateway.config.runtime_routing import Route, Upstream
from gateway.config.runtime_store import CacheConfig, StoreOptions

__all__ = ["Config"]


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

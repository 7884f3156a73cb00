"""The runtime form of the sections on where requests go (``upstreams``, ``routes``): frozen,
slotted dataclasses that :mod:`gateway.pipeline` and :mod:`gateway.forward` read on every request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "EXPLICIT_METHODS",
    "HTTP_METHODS",
    "HealthCheck",
    "Route",
    "TargetHealth",
    "Upstream",
    "UpstreamTLS",
]

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Served only on routes that name them (a route without `methods` does not take them).
EXPLICIT_METHODS = frozenset({"TRACE", "CONNECT"})


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

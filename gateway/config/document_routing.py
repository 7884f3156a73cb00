"""``gateway.yaml``'s sections on where requests go: ``upstreams`` (targets, TLS, health) and
``routes`` (paths, methods, scopes), what :mod:`gateway.pipeline` and :mod:`gateway.forward` read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    model_validator,
)

from gateway.config.fields import (
    Bool,
    Float,
    Int,
    Positive,
    ReadableFile,
    Seconds,
    Section,
    StrList,
    Url,
    check,
    default_of,
    http_url,
    route_path,
)
from gateway.config.problems import invalid
from gateway.config.runtime_routing import (
    EXPLICIT_METHODS,
    HTTP_METHODS,
    HealthCheck,
    Route,
    TargetHealth,
    Upstream,
    UpstreamTLS,
)

__all__ = [
    "HealthCheckDoc",
    "HealthDoc",
    "RouteDoc",
    "ScopeSpecDoc",
    "UpstreamDoc",
    "UpstreamField",
    "UpstreamTLSDoc",
]


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


# -- routes ----------------------------------------------------------------------------------------------


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

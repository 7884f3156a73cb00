"""From a validated :class:`~gateway.config.document.Document` to the runtime
:class:`~gateway.config.runtime.Config`: the rules that span sections (a route naming an upstream,
a token type naming a route, OAuth's token type, the dashboard's secret) are checked here, with
their problems and warnings, and everything derived is computed once (a route's index, the closure
of scope implications, the built-in routes of OAuth and leaked-token revocation).

The rules of each group of sections, and the building of their runtime parts, live next to each
other: :mod:`~gateway.config.build_auth` (token types, scopes), :mod:`~gateway.config.build_routing`
(upstreams, routes) and :mod:`~gateway.config.build_features` (OAuth, session JWTs, dashboard, rate
limits); the sections that only copy their values (listeners, workspace, cache, limits, …) are built
here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from gateway.config.build_auth import (
    build_scopes,
    build_token_types,
    check_scope_references,
    check_type_routes,
)
from gateway.config.build_features import (
    build_dashboard,
    build_oauth,
    build_rate_limits,
    build_sessions,
)
from gateway.config.build_routing import build_routes, build_upstream, leak_routes, warn_shadowed
from gateway.config.document import Document
from gateway.config.document_edge import ListenerDoc, parse_address
from gateway.config.problems import MISSING, Problem
from gateway.config.runtime import Config
from gateway.config.runtime_auth import IdentityHeaders, WorkspaceSource
from gateway.config.runtime_edge import LimitsConfig, Listener, ServerTLS
from gateway.config.runtime_features import ExternalAuthConfig, TracingConfig
from gateway.config.runtime_store import CacheConfig, StoreOptions
from gateway.features.oauth.routes import oauth_routes

__all__ = ["Positions", "build"]

# What is left of a numbered list (routes, token_types, rate_limits.rules) -> places in the file.
Positions = dict[str, list[int]]


def build(
    doc: Document, positions: Positions, tree: Any, source: str, problems: list[Problem]
) -> Config:
    def error(path: str, message: str, value: Any = MISSING) -> None:
        problems.append(Problem(path, message, value))

    def warn(path: str, message: str, value: Any = MISSING) -> None:
        problems.append(Problem(path, message, value, warning=True))

    proxy = _listener(doc.listeners.proxy)
    admin = _listener_or_none(doc.listeners.admin)
    token_types = build_token_types(doc, _numbering(positions, "token_types"), error)
    # Names as written, so a route naming an upstream the validator refused is not reported too.
    raw_upstreams = tree.get("upstreams") if isinstance(tree, dict) else None
    upstream_names = set(raw_upstreams) if isinstance(raw_upstreams, dict) else set()
    upstreams = {name: build_upstream(name, u, warn) for name, u in doc.upstreams.items()}
    routes = build_routes(doc, _numbering(positions, "routes"), upstream_names, error)
    scopes = build_scopes(doc)
    roles = {k: frozenset(v) for k, v in doc.roles.items()}
    check_scope_references(routes, scopes, roles, error)
    trusted = tuple(ipaddress.ip_network(n, strict=False) for n in doc.trusted_proxies)
    pepper = doc.pepper or None
    oauth = build_oauth(doc, token_types, error)
    if oauth is not None:
        routes = routes + oauth_routes(oauth, len(routes))
    # Leaked-token revocation (issue 17 §7): public, on every gateway (gateway/features/leaks.py).
    routes = routes + leak_routes(len(routes))
    warn_shadowed(routes, warn)
    check_type_routes(token_types, _numbering(positions, "token_types"), routes, error)
    if any(tt.client_certificate for tt in token_types) and (
        proxy.tls is None or proxy.tls.client_auth == "none"
    ):
        error(
            "token_types",
            "a client_certificate type needs listeners.proxy.tls with client_auth optional or "
            "required (nothing would ever present a certificate)",
        )
    external_auth = None
    if doc.external_auth is not None:
        x = doc.external_auth
        external_auth = ExternalAuthConfig(x.path, _listener_or_none(x.listener), x.cache_seconds)
        if not trusted:
            warn(
                "external_auth",
                "trusted_proxies is empty: the decision endpoint will refuse every caller with 403",
            )
    w = doc.workspace
    return Config(
        source=source,
        proxy=proxy,
        admin=admin,
        metrics=_listener_or_none(doc.listeners.metrics),
        store=doc.store.url,
        token_types=token_types,
        workspace=WorkspaceSource(
            source=w.source,
            header=w.header if w.source == "header" else None,
            match=w.match,
            required=w.required,
            pattern=re.compile(w.pattern) if w.pattern is not None else None,
            host_suffix=w.host_suffix,
            id_format=w.id_format,
        ),
        upstreams=upstreams,
        routes=routes,
        scopes=scopes,
        roles=roles,
        identity_headers=IdentityHeaders(**doc.identity_headers.model_dump()),
        cache=CacheConfig(**doc.cache.model_dump()),
        envelope=doc.errors.envelope,
        trusted_proxies=trusted,
        pepper=pepper,
        reject_query_credentials=tuple(doc.reject_query_credentials),
        operator_workspace=doc.operator_workspace,
        limits=LimitsConfig(**doc.limits.model_dump()),
        dashboard=build_dashboard(doc, pepper, admin, token_types, error, warn),
        oauth=oauth,
        sessions=build_sessions(doc),
        store_options=StoreOptions(**doc.store.model_dump(exclude={"url"})),
        rate_limits=build_rate_limits(
            doc, _numbering(positions, "rate_limits.rules"), routes, token_types, error
        ),
        external_auth=external_auth,
        tracing=TracingConfig(**doc.tracing.model_dump()) if doc.tracing is not None else None,
    )


def _listener(doc: ListenerDoc) -> Listener:
    host, port = parse_address(doc.address) or ("127.0.0.1", 0)
    tls = None
    if doc.tls is not None:
        tls = ServerTLS(**doc.tls.model_dump())
    return Listener(host, port, tls)


def _listener_or_none(doc: ListenerDoc | None) -> Listener | None:
    return None if doc is None else _listener(doc)


def _numbering(positions: Positions, name: str) -> Callable[[int], int]:
    """Entry ``i`` of a numbered list -> its place in the file (the same when nothing was set aside)."""
    kept = positions.get(name)
    # Entries the file did not have (the defaults of an absent list) keep their own numbers.
    return lambda i: kept[i] if kept is not None and i < len(kept) else i

"""From a validated :class:`~gateway.config.document.Document` to the runtime
:class:`~gateway.config.runtime.Config`: the rules that span sections (a route naming an upstream,
a token type naming a route, OAuth's token type, the dashboard's secret) are checked here, with
their problems and warnings, and everything derived is computed once (a route's index, the closure
of scope implications, the built-in routes of OAuth and leaked-token revocation).

Over 400 lines on purpose: one short function per section, in the file's order, so a rule is found
next to the section it is about.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from gateway.config.document import (
    Document,
    ListenerDoc,
    RateRuleDoc,
    UpstreamDoc,
    parse_address,
)
from gateway.config.problems import MISSING, Problem
from gateway.config.runtime import (
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
from gateway.features.oauth.routes import oauth_routes

__all__ = ["LEAK_REVOKE_PATH", "Positions", "Report", "build", "leak_routes"]

LEAK_REVOKE_PATH = "/credentials/revoke"
# What is left of a numbered list (routes, token_types, rate_limits.rules) -> places in the file.
Positions = dict[str, list[int]]


class Report(Protocol):
    """Records one problem (an error or a warning) with its key path and value."""

    def __call__(self, path: str, message: str, value: Any = MISSING) -> None: ...


def build(
    doc: Document, positions: Positions, tree: Any, source: str, problems: list[Problem]
) -> Config:
    def error(path: str, message: str, value: Any = MISSING) -> None:
        problems.append(Problem(path, message, value))

    def warn(path: str, message: str, value: Any = MISSING) -> None:
        problems.append(Problem(path, message, value, warning=True))

    proxy = _listener(doc.listeners.proxy)
    admin = _listener_or_none(doc.listeners.admin)
    token_types = _token_types(doc, _numbering(positions, "token_types"), error)
    # Names as written, so a route naming an upstream the validator refused is not reported too.
    raw_upstreams = tree.get("upstreams") if isinstance(tree, dict) else None
    upstream_names = set(raw_upstreams) if isinstance(raw_upstreams, dict) else set()
    upstreams = {name: _upstream(name, u, warn) for name, u in doc.upstreams.items()}
    routes = _routes(doc, _numbering(positions, "routes"), upstream_names, error)
    scopes = _scopes(doc)
    roles = {k: frozenset(v) for k, v in doc.roles.items()}
    _check_scope_references(routes, scopes, roles, error)
    trusted = tuple(ipaddress.ip_network(n, strict=False) for n in doc.trusted_proxies)
    pepper = doc.pepper or None
    oauth = _oauth(doc, token_types, error)
    if oauth is not None:
        routes = routes + oauth_routes(oauth, len(routes))
    # Leaked-token revocation (issue 17 §7): public, on every gateway (gateway/features/leaks.py).
    routes = routes + leak_routes(len(routes))
    _warn_shadowed(routes, warn)
    _check_type_routes(token_types, _numbering(positions, "token_types"), routes, error)
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
        dashboard=_dashboard(doc, pepper, admin, token_types, error, warn),
        oauth=oauth,
        sessions=_sessions(doc),
        store_options=StoreOptions(**doc.store.model_dump(exclude={"url"})),
        rate_limits=_rate_limits(
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


def _token_types(
    doc: Document, place: Callable[[int], int], error: Report
) -> tuple[TokenType, ...]:
    out: list[TokenType] = []
    seen: dict[str, str] = {}
    for i, t in enumerate(doc.token_types):
        path = f"token_types[{place(i)}]"
        for other in seen:
            if t.prefix.startswith(other) or other.startswith(t.prefix):
                error(f"{path}.prefix", f"overlaps the prefix of {seen[other]}", t.prefix)
        seen[t.prefix] = path
        out.append(
            TokenType(
                name=t.name or t.prefix,
                prefix=t.prefix,
                kind=t.kind,
                environment=t.environment,
                credential=CredentialSource(t.credential.header, t.credential.resolved_scheme()),
                inherit_user_permissions=t.inherit_user_permissions,
                plans=frozenset(t.plans),
                routes=frozenset(t.routes),
                require_allowed_domains=t.require_allowed_domains,
                client_certificate=t.client_certificate,
            )
        )
    return tuple(out)


def _upstream(name: str, u: UpstreamDoc, warn: Report) -> Upstream:
    targets = tuple(u.targets or [u.url or ""])
    tls = None
    if u.tls is not None:
        tls = UpstreamTLS(**u.tls.model_dump())
        if not tls.verify:
            warn(
                f"upstreams.{name}.tls.verify",
                "is false: the upstream's certificate is NOT verified; anyone on the path can "
                "impersonate it and read every token and identity header sent to it",
            )
    h = u.health
    check = HealthCheck(**h.check.model_dump()) if h.check is not None else None
    return Upstream(
        name=name,
        url=targets[0],
        environments={env: url for env, url in u.environments.items() if url},
        connect_timeout=u.connect_timeout,
        timeout=u.timeout,
        max_connections=u.max_connections,
        targets=targets,
        balance=u.balance,
        tls=tls,
        health=TargetHealth(max_failures=h.max_failures, backoff=h.backoff, check=check),
    )


def _routes(
    doc: Document, place: Callable[[int], int], upstreams: set[str], error: Report
) -> tuple[Route, ...]:
    out: list[Route] = []
    names: set[str] = set()
    for n, r in enumerate(doc.routes):
        i = place(n)
        path = f"routes[{i}]"
        name = r.name if r.name is not None else f"route{i}"
        if name in names:
            error(f"{path}.name", "duplicates another route's name", name)
        names.add(name)
        upstream = r.upstream
        if r.handler is None and upstream is None:
            if len(upstreams) == 1:
                upstream = next(iter(upstreams))
            else:
                error(f"{path}.upstream", "is required (there is more than one upstream)")
        if upstream is not None and upstream not in upstreams:
            error(f"{path}.upstream", "names an unknown upstream", upstream)
        out.append(
            Route(
                name=name,
                path=r.path,
                methods=frozenset(r.methods) if r.methods is not None else None,
                upstream=upstream,
                scopes_any=tuple(r.scopes.any_of),
                scopes_all=tuple(r.scopes.all_of),
                public=r.public,
                strip_prefix=r.strip_prefix,
                add_prefix=r.add_prefix,
                keep_credential=r.keep_credential,
                handler=r.handler,
                auth_methods=frozenset(r.auth_methods),
                max_body_bytes=r.max_body_bytes,
                method_override=r.method_override,
                index=i,
                tags=frozenset(r.tags),
                require_client_certificate=r.require_client_certificate,
            )
        )
    return tuple(out)


def _closure(implies: Mapping[str, list[str]]) -> dict[str, frozenset[str]]:
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


def _scopes(doc: Document) -> ScopeRules:
    s = doc.scopes
    return ScopeRules(
        known=frozenset(s.known), superuser=s.superuser or None, implies=_closure(s.implies)
    )


def _check_scope_references(
    routes: tuple[Route, ...],
    rules: ScopeRules,
    roles: Mapping[str, frozenset[str]],
    error: Report,
) -> None:
    if not rules.known:
        return
    valid = rules.known | ({rules.superuser} if rules.superuser else set())
    for route in routes:
        for s in (*route.scopes_any, *route.scopes_all):
            if s not in valid:
                error(f"routes[{route.index}].scopes", "names a scope not in scopes.known", s)
    for role, scopes in roles.items():
        for s in scopes:
            if s not in valid:
                error(f"roles.{role}", "names a scope not in scopes.known", s)


def _warn_shadowed(routes: tuple[Route, ...], warn: Report) -> None:
    """Two routes with the same pattern and overlapping methods: the later one never matches."""
    for i, a in enumerate(routes):
        for b in routes[i + 1 :]:
            if a.path != b.path:
                continue
            if a.methods is None or b.methods is None or a.methods & b.methods:
                warn(
                    f"routes[{b.index}]",
                    f"is shadowed by routes[{a.index}] ({a.name}) with the same path and methods",
                    b.name,
                )


def _check_type_routes(
    token_types: tuple[TokenType, ...],
    place: Callable[[int], int],
    routes: tuple[Route, ...],
    error: Report,
) -> None:
    """Every name in ``token_types[].routes`` must be a route's name or one of its tags."""
    known = {rt.name for rt in routes} | {t for rt in routes for t in rt.tags}
    for i, tt in enumerate(token_types):
        for name in sorted(tt.routes - known):
            error(f"token_types[{place(i)}].routes", "names no route and no route tag", name)


def leak_routes(start: int) -> tuple[Route, ...]:
    """``POST /credentials/revoke``: anyone reports leaked tokens (:mod:`gateway.features.leaks`)."""
    return (
        Route(
            name="credentials-revoke",
            path=LEAK_REVOKE_PATH,
            methods=frozenset({"POST"}),
            public=True,
            handler="revoke_leaked",
            max_body_bytes=128 * 1024,  # 1,000 tokens; gateway.features.leaks.MAX_BODY
            index=start,
        ),
    )


def _oauth(doc: Document, token_types: tuple[TokenType, ...], error: Report) -> OAuthConfig | None:
    o = doc.oauth
    if o is None:
        return None
    oauth_types = [t for t in token_types if t.kind == "oauth_access"]
    tt_name = o.access_token_type or (oauth_types[0].name if oauth_types else None)
    if tt_name is None:
        error("oauth.access_token_type", "is required: add a token type with kind oauth_access")
    else:
        tt = next((t for t in token_types if tt_name in (t.name, t.prefix)), None)
        if tt is None or tt.kind != "oauth_access":
            error(
                "oauth.access_token_type", "must name a token type with kind oauth_access", tt_name
            )
    for t in token_types:
        if t.prefix.startswith(o.refresh_prefix) or o.refresh_prefix.startswith(t.prefix):
            error(
                "oauth.refresh_prefix",
                f"overlaps the prefix of token type {t.name}",
                o.refresh_prefix,
            )
    return OAuthConfig(
        access_token_type=tt_name or "",
        refresh_prefix=o.refresh_prefix,
        issuer=o.issuer.rstrip("/") if o.issuer else None,
        paths=OAuthPaths(**o.paths.model_dump()),
        access_token_ttl=o.access_token_ttl,
        refresh_token_ttl=o.refresh_token_ttl,
        code_ttl=o.code_ttl,
        refresh_reuse_grace=o.refresh_reuse_grace,
        login_url=o.login_url,
    )


def _sessions(doc: Document) -> SessionsConfig | None:
    s = doc.sessions
    if s is None:
        return None
    return SessionsConfig(
        algorithms=frozenset(s.algorithms),
        issuer=s.issuer,
        audience=s.audience,
        secret=s.secret or None,
        jwks_file=s.jwks_file or None,
        jwks_url=s.jwks_url or None,
        jwks_cooldown=s.jwks_cooldown,
        leeway=s.leeway,
        roles=frozenset(s.roles),
        cookie=s.cookie,
    )


def _dashboard(
    doc: Document,
    pepper: str | None,
    admin: Listener | None,
    token_types: tuple[TokenType, ...],
    error: Report,
    warn: Report,
) -> DashboardConfig | None:
    d = doc.dashboard
    if d is None:
        return None
    if d.listener == "admin" and admin is None:
        error("dashboard.listener", "is admin but listeners.admin is not set", d.listener)
    secret = d.secret or pepper or ""
    if secret and len(secret) < 16:
        error("dashboard.secret", "must be at least 16 characters", "<hidden>")
    by_name = {t.name: t for t in token_types}
    for name in d.token_types:
        tt = by_name.get(name)
        if tt is None:
            error("dashboard.token_types", "names no token type in token_types", name)
        elif tt.kind == "oauth_access":
            error("dashboard.token_types", "OAuth access tokens are not minted by hand", name)
    if not secret:
        # Presets declare the dashboard at their document's path with
        # `secret: ${GATEWAY_DASHBOARD_SECRET:-}`: without a secret it stays off, and says so.
        warn(
            "dashboard.secret",
            "is empty and no pepper is set: the dashboard is off until one is configured",
        )
        return None
    return DashboardConfig(
        path=d.path,
        listener=d.listener,
        secret=secret,
        public_url=d.public_url.rstrip("/") if d.public_url is not None else None,
        session_ttl=d.session_ttl,
        session_jwt_cookie=d.session_jwt_cookie,
        login_url=d.login_url,
        token_types=tuple(d.token_types),
    )


def _rate_limits(
    doc: Document,
    place: Callable[[int], int],
    routes: tuple[Route, ...],
    types: tuple[TokenType, ...],
    error: Report,
) -> RateLimits:
    m = doc.rate_limits
    route_names = {rt.name for rt in routes}
    type_names = {t.name for t in types} | {t.prefix for t in types}
    rules: list[RateLimitRule] = []
    for n, raw in enumerate(m.rules):
        i = place(n)
        path = f"rate_limits.rules[{i}]"
        rule = _rule(raw, f"rule{i}")
        if any(x.name == rule.name for x in rules):
            error(f"{path}.name", "duplicates another rule's name", rule.name)
        for rn in sorted(rule.routes - route_names):
            error(f"{path}.routes", "names an unknown route", rn)
        for tn in sorted(rule.token_types - type_names):
            error(f"{path}.token_types", "names an unknown token type", tn)
        rules.append(rule)
    return RateLimits(
        rules=tuple(rules),
        redis=m.redis or None,
        on_redis_error=m.on_redis_error,
        key_prefix=m.key_prefix,
        failed_auth=_rule(m.failed_auth, "failed_auth") if m.failed_auth is not None else None,
    )


def _rule(r: RateRuleDoc, default_name: str) -> RateLimitRule:
    return RateLimitRule(
        name=r.name or default_name,
        limit=r.limit,
        window=r.window,
        per=tuple(dict.fromkeys(r.per)),
        token_types=frozenset(r.token_types),
        routes=frozenset(r.routes),
    )

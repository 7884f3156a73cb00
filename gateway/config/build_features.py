"""Building the runtime form of the feature sections (``oauth``, ``sessions``, ``dashboard``,
``rate_limits``), with the rules that tie them to other sections: OAuth's token type, the
dashboard's listener and secret, a rate-limit rule naming a route or token type.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.config.document import Document
from gateway.config.document_features import RateRuleDoc
from gateway.config.problems import Report
from gateway.config.runtime_auth import TokenType
from gateway.config.runtime_edge import Listener
from gateway.config.runtime_features import (
    DashboardConfig,
    OAuthConfig,
    OAuthPaths,
    RateLimitRule,
    RateLimits,
    SessionsConfig,
)
from gateway.config.runtime_routing import Route

__all__ = ["build_dashboard", "build_oauth", "build_rate_limits", "build_sessions"]


def build_oauth(
    doc: Document, token_types: tuple[TokenType, ...], error: Report
) -> OAuthConfig | None:
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


def build_sessions(doc: Document) -> SessionsConfig | None:
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


def build_dashboard(
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


def build_rate_limits(
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

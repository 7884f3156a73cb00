"""The pipeline, as two functions: :func:`decide` (every check, in order, visibly) and :func:`run`
(decide, then serve or forward).

    decide: normalize path → match route → (method override, where the route honours one)
              → (refuse foreign upgrades) → (failed-auth throttle)
              → authenticate → workspace → scopes → checks (allowed domains, rate limits, …)
    run:    (CORS preflight) → decide → (100 Continue) → built-in handler, or forward upstream

Proxy mode calls :func:`run`; the external-authorization decision endpoint
(:mod:`gateway.features.extauth`) calls :func:`decide` alone and never forwards, so both doors refuse and
allow exactly the same requests. Steps raise :class:`gateway.core.errors.GatewayError`; the edge
middleware renders those. Each step is a plain function or object method that can be tested alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.config import Route
from gateway.core.context import RequestContext
from gateway.core.errors import (
    AuthenticationError,
    EnvironmentUnavailable,
    RouteNotFound,
    UpgradeNotAllowed,
)
from gateway.core.identity import Identity, Principal
from gateway.forward.body import answer_expect
from gateway.forward.websocket import is_websocket_upgrade, proxy_websocket
from gateway.pipeline.authn import TokenKey
from gateway.pipeline.authz import authorize_route
from gateway.pipeline.memo import WorkspaceHit
from gateway.pipeline.override import overridden
from gateway.pipeline.paths import NormalizedPath, normalize

if TYPE_CHECKING:
    from gateway.app import Gateway, Runtime

__all__ = ["Decision", "decide", "is_preflight", "remember", "run", "upstream_base"]


@dataclass(frozen=True, slots=True)
class Decision:
    """An allowed request: its canonical path and route (the identity is on the context)."""

    path: NormalizedPath
    route: Route
    websocket: bool


def is_preflight(rt: Runtime, request: web.Request) -> bool:
    """A CORS preflight the gateway answers itself (OPTIONS with Origin + the method asked about)."""
    return (
        request.method == "OPTIONS"
        and rt.hooks.preflight is not None
        and "Access-Control-Request-Method" in request.headers
        and "Origin" in request.headers
    )


async def decide(
    gw: Gateway, rt: Runtime, request: web.Request, ctx: RequestContext | None = None
) -> Decision:
    """Every check of the pipeline; raises the refusal, or returns what was allowed."""
    if ctx is None:
        ctx = RequestContext.of(request)
    path = normalize(request.raw_path.partition("?")[0])
    match = rt.router.match(request.method, path.segments)
    if match.route.method_override:
        match = await overridden(request, match, rt.router, rt.forwarder, path.segments)
    route = match.route
    ctx.route, ctx.params = route, match.params

    upgrade = request.headers.get("Upgrade")
    websocket = upgrade is not None and is_websocket_upgrade(request)
    if upgrade is not None and not websocket:
        # Bounded reason ids only: they become metric labels.
        kind = "h2c" if upgrade.strip().lower() == "h2c" else "other"
        raise UpgradeNotAllowed(reason=f"upgrade_{kind}")

    if not route.public:
        auth_started = time.perf_counter()
        try:
            for guard in rt.hooks.pre_auth:
                await guard(request, ctx)
            memo = rt.memo
            epoch = memo.cache.epoch  # before any lookup: what the memo may remember is this old
            authenticator = rt.authenticator
            hit = None
            seen = False  # the token was in the positive cache before this request
            try:
                key = authenticator.token_key(request)
                if key is not None and not route.require_client_certificate:
                    hit = memo.token(key[1], key[2])
                    seen = hit is None and memo.cache.tokens.expiry(key[1]) is not None
                if hit is not None:
                    # A cache hit: the record as the positive cache holds it, checked as ever.
                    authenticator.admit(hit.record, hit.not_after, hit.token_type)
                    principal = hit.principal
                else:
                    principal = await authenticator.authenticate_key(request, key)
                    if route.require_client_certificate:  # both: credential and certificate
                        await authenticator.require_certificate(request, principal)
            except AuthenticationError as err:
                for hook in rt.hooks.auth_failed:
                    await hook(request, ctx, err)
                raise
            ctx.principal = principal
            if route.auth_methods and principal.auth_method not in route.auth_methods:
                # The route's `auth_methods` (e.g. session JWTs for the web client only).
                raise AuthenticationError(
                    f"This endpoint does not accept {principal.auth_method} credentials.",
                    reason="auth_method",
                )
            ws_hit = None
            if hit is not None:
                ws_hit = memo.workspace(hit, rt.workspaces.requested(request))
            if ws_hit is not None:
                identity = ctx.identity = ws_hit.identity
                if id(route) not in ws_hit.allowed:
                    authorize_route(rt.config.scopes, route, identity)
                    ws_hit.allowed.add(id(route))
            else:
                # On the context before the scope check: a 403 is logged and traced with it.
                identity = ctx.identity = await rt.workspaces.resolve(request, principal)
                authorize_route(rt.config.scopes, route, identity)
                if seen and key is not None and principal.token is not None:
                    # Only tokens seen before are memoized: a cache miss costs the store work and
                    # nothing more, and a flood of distinct tokens never fills the memo.
                    ws_hit = remember(rt, epoch, key, request, principal, identity)
                    if ws_hit is not None:
                        ws_hit.allowed.add(id(route))
            if ws_hit is not None:
                ctx.identity_headers, ctx.log_fields = ws_hit.headers, ws_hit.log_fields
            for check in rt.hooks.checks:
                await check(request, ctx)
        finally:
            # Refusals are timed too: a slow denial path is as interesting as a slow success.
            ctx.timing["auth"] = time.perf_counter() - auth_started
    return Decision(path, route, websocket)


def remember(
    rt: Runtime,
    epoch: int,
    key: TokenKey,
    request: web.Request,
    principal: Principal,
    identity: Identity,
) -> WorkspaceHit | None:
    """Put an allowed token request's conclusions in the runtime's cache-hit memo."""
    resolver = rt.workspaces
    wkey = resolver.requested(request)
    token = principal.token
    assert token is not None
    by = (resolver.source.match, wkey) if wkey is not None else ("id", token.workspace_id)
    return rt.memo.remember(
        epoch,
        key[1],
        key[2],
        principal,
        wkey,
        by,
        identity,
        rt.forwarder.identity_block(identity),
    )


def upstream_base(rt: Runtime, route: Route, identity: Identity | None) -> str:
    """The base URL the route's upstream has for the caller's environment; 403 when it has none."""
    upstream = rt.config.upstreams[route.upstream or ""]
    base = upstream.url_for(identity.environment if identity else None)
    if base is None:
        raise EnvironmentUnavailable(
            f"No upstream is configured for the {identity.environment if identity else ''} "
            "environment.",
            reason="environment_unavailable",
        )
    return base


async def run(gw: Gateway, request: web.Request) -> web.StreamResponse:
    rt = gw.runtime  # one config for the whole request, even if a reload swaps it meanwhile
    preflight = rt.hooks.preflight
    if preflight is not None and is_preflight(rt, request):
        # A CORS preflight carries no credential; it only asks whether the real request may be
        # sent, which will itself go through every step of decide().
        segments = normalize(request.raw_path.partition("?")[0]).segments
        return await preflight(request, rt, segments)
    ctx = RequestContext.of(request)
    decision = await decide(gw, rt, request, ctx)
    route = decision.route

    if "Expect" in request.headers:
        # Only now, authorized, is the client asked for its body; the upstream never sees
        # `Expect`, so one that never sends 100 cannot stall the client.
        await answer_expect(request)

    if route.handler is not None:
        handler = rt.hooks.handlers.get(route.handler)
        if handler is None:
            raise RouteNotFound(reason="handler_missing")
        return await handler(request, ctx)

    base = upstream_base(rt, route, ctx.identity)
    upstream = rt.config.upstreams[route.upstream or ""]
    if decision.websocket:
        headers = rt.forwarder.build_headers(request, route, ctx.identity, ctx.request_id)
        base, ssl_context, server_name = rt.forwarder.websocket_target(upstream.name, base)
        url = base + rt.forwarder.target_path(route, decision.path.path)
        query = request.raw_path.partition("?")[2]
        return await proxy_websocket(
            request,
            gw.client,
            url + (f"?{query}" if query else ""),
            headers,
            upstream.timeout,
            ssl_context,
            server_name,
        )
    return await rt.forwarder.forward(
        request,
        route,
        base,
        decision.path.path,
        ctx.identity,
        ctx.request_id,
        ctx.timing,
        ctx.identity_headers,
    )

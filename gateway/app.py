"""Wiring: build the long-lived services once, the config-derived runtime per (re)load, the apps.

:class:`Gateway` owns what lives as long as the process (store, caches, change feed, usage recorder,
the upstream client session). :class:`Runtime` owns everything derived from one config (router,
authenticator, workspace resolver, forwarder) plus the gateway's frozen request-path
:class:`gateway.pipeline.hooks.Hooks`; a reload builds a new one and swaps a single reference, so a request
in flight finishes on the runtime (and hooks) it started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any

import aiohttp
from aiohttp import web

from gateway.config import Config
from gateway.core import tokens
from gateway.core.context import RequestContext
from gateway.core.errors import GatewayError, StoreUnavailable, UpstreamTimeout
from gateway.core.identity import json_text, log_fields
from gateway.edge import catchall
from gateway.edge.deadline import Deadlines
from gateway.edge.listen import SERVER
from gateway.edge.logbuffer import direct_sink
from gateway.edge.responses import error_response, json_response
from gateway.extensions import load_all
from gateway.forward.balancer import Balancers
from gateway.forward.proxy import Forwarder, make_client_session
from gateway.forward.upstream import UpstreamPools
from gateway.pipeline.authn import Authenticator, SessionVerifier
from gateway.pipeline.hooks import Hooks, handlers_of
from gateway.pipeline.memo import HitMemo
from gateway.pipeline.routing import Router
from gateway.pipeline.run import run
from gateway.pipeline.workspace import WorkspaceResolver
from gateway.store import Store, open_store
from gateway.store.cache import AuthCache
from gateway.store.changefeed import ChangeFeed
from gateway.store.health import StoreHealth
from gateway.store.usage import UsageRecorder

__all__ = [
    "GATEWAY",
    "Gateway",
    "Runtime",
    "create_admin_app",
    "create_bare_app",
    "create_proxy_app",
    "response_headers",
]

log = logging.getLogger("gateway")
access_log = logging.getLogger("gateway.access")
GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
# A change-feed read may return a thousand rows: it gets at least this long before it counts as
# an outage. /readyz answers within READY_TIMEOUT whatever the store does.
FEED_READ_TIMEOUT = 1.0
READY_TIMEOUT = 0.8


@dataclass(slots=True)
class Runtime:
    config: Config
    router: Router
    authenticator: Authenticator
    workspaces: WorkspaceResolver
    forwarder: Forwarder
    memo: HitMemo
    hooks: Hooks  # the gateway's, frozen: every hook a request runs comes from here


class Gateway:
    """One process's gateway: services plus the current runtime."""

    def __init__(self, config: Config, store: Store | None = None) -> None:
        self.config = config
        opts = config.store_options
        self.store: Store = store or open_store(
            config.store, connect_timeout=opts.connect_timeout, query_timeout=opts.query_timeout
        )
        self.hasher = tokens.TokenHasher(config.pepper)
        # Issue 23: one view of the store's health for the request path and the change feed.
        self.health = StoreHealth(opts.lookup_timeout, opts.probe_interval, opts.outage_grace)
        self.cache = AuthCache(self.store, config.cache, health=self.health)
        self.feed = ChangeFeed(
            self.store,
            [self.cache],
            config.cache.poll_interval,
            self.health,
            timeout=max(opts.lookup_timeout, FEED_READ_TIMEOUT),
        )
        self.health.on_probe_ok = self.feed.wake
        self.usage = UsageRecorder(self.store, config.cache.usage_flush_interval)
        self.session: aiohttp.ClientSession | None = None
        self.pools = UpstreamPools()  # kept across reloads: idle upstream connections stay warm
        self.balancers = Balancers()  # multi-target upstreams' health, kept across reloads too
        self.session_verifier: SessionVerifier | None = None
        # Async cleanups run by stop() (e.g. closing a Redis client).
        self.closers: list[Callable[[], Awaitable[None]]] = []
        # Coroutine factories run as tasks between start() and stop() (e.g. metric refreshers).
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = [self.pools.sweep_forever]
        self._tasks: list[asyncio.Task[None]] = []
        self.deadlines = Deadlines()
        self.started = time.time()
        self.runtime: Runtime = None  # type: ignore[assignment]
        self.extensions = load_all()
        # The request path's hooks: extensions add theirs in install(), then they are frozen.
        self.hooks = Hooks(observers=(_log_access,), handlers=handlers_of(self.extensions))
        for ext in self.extensions:
            install = getattr(ext, "install", None)
            if install is not None:
                install(self)
        self.hooks.freeze()

    # -- runtime -----------------------------------------------------------------------------------

    def build_runtime(self, config: Config) -> Runtime:
        """Everything derived from ``config``; raises nothing a valid config can trigger."""
        authenticator = Authenticator(
            config, self.cache, self.hasher, self.usage, self.session_verifier
        )
        assert self.session is not None
        return Runtime(
            config=config,
            router=Router(config.routes),
            authenticator=authenticator,
            workspaces=WorkspaceResolver(config, self.cache),
            forwarder=Forwarder(
                config,
                self.session,
                self.pools,
                authenticator.credential_headers,
                self.balancers,
                self.hooks.upstream_headers,
            ),
            memo=HitMemo(self.cache, config.cache.size),
            hooks=self.hooks,
        )

    def apply_config(self, config: Config) -> None:
        runtime = self.build_runtime(config)
        self.balancers.update(
            config.upstreams,
            {name: ctx for name, (ctx, _) in runtime.forwarder.tls.items()},
            self.session,
        )
        self.runtime = runtime
        self.config = config
        # Idle upstream connections to base URLs the new config no longer names are closed.
        self.pools.retain(
            {
                url
                for up in config.upstreams.values()
                for url in (*up.targets, *up.environments.values())
                if url
            }
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self.deadlines.bind(asyncio.get_running_loop())
        await self.store.open()
        self.session = make_client_session()
        self.apply_config(self.config)
        await self.feed.start()
        await self.usage.start()
        self._tasks = [asyncio.create_task(factory()) for factory in self.background]

    @property
    def client(self) -> aiohttp.ClientSession:
        """The shared upstream client session (exists between start and stop)."""
        assert self.session is not None, "Gateway.start() has not run"
        return self.session

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.balancers.stop()
        await self.feed.stop()
        await self.usage.stop()
        for close in self.closers:
            await close()
        self.pools.close()
        self.deadlines.unbind()
        if self.session is not None:
            await self.session.close()
        await self.store.close()

    # -- the proxy handler -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # Deadlines, not asyncio.timeout: one shared timer instead of one per request (see there).
        deadline = self.deadlines.enter(self.runtime.config.limits.request_timeout)
        try:
            try:
                return await run(self, request)
            finally:
                timed_out = self.deadlines.leave(deadline)
        except asyncio.CancelledError:
            if not timed_out:
                raise
        except TimeoutError:
            pass
        raise UpstreamTimeout(
            "The request took longer than the gateway allows.", reason="request_timeout"
        ) from None


_stamp: list[Any] = [0, ""]  # (second, its ISO text): one strftime per second, not per request


def _now_iso() -> str:
    now = int(time.time())
    if _stamp[0] != now:
        _stamp[0], _stamp[1] = now, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return str(_stamp[1])


def _access_line(
    request: web.Request, response: web.StreamResponse | None, ctx: RequestContext
) -> str:
    """The access-log line: the compact JSON object ``json`` would write for these fields, written
    directly (a third of the cost of building a dict and encoding it, on every request)."""
    upstream = ctx.timing.get("upstream")
    upstream_ms = "null" if upstream is None else repr(round(upstream * 1000, 3))
    who = ctx.log_fields
    if who is None:
        who = log_fields(ctx.principal, ctx.identity)
    # The trace the request belongs to when tracing is on (32 hex digits), so logs and traces join.
    trace = f',"trace_id":"{ctx.trace_id}"' if ctx.trace_id else ""
    return (
        f'{{"time":{_json_str(_now_iso())},"request_id":{_json_str(ctx.request_id)},'
        f'"method":{_json_str(request.method)},"route":{json_text(ctx.route.name if ctx.route else None)},'
        f'"status":{response.status if response is not None else 0:d},'
        f'"duration_ms":{round((time.perf_counter() - ctx.started) * 1000, 3)!r},'
        f'"upstream_ms":{upstream_ms},"decision":{_json_str(ctx.decision)},'
        f'"reason":{json_text(ctx.reason)},{who}{trace}}}'
    )


def _log_access(
    request: web.Request, response: web.StreamResponse | None, ctx: RequestContext
) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    line = _access_line(request, response, ctx)
    sink = direct_sink(access_log)
    if sink is not None:
        sink.write(line)  # what access_log.info(line) would end in, minus the record machinery
    else:
        access_log.info(line)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """:func:`edge` as an aiohttp middleware, for the admin listener."""
    return await edge(request.app[GATEWAY], request, handler)


def with_edge(gw: Gateway, handler: Handler) -> Handler:
    """``handler`` wrapped in :func:`edge`: how the proxy listener's handlers get it.

    The proxy app has no middleware: aiohttp's middleware machinery (the chain built per
    request, the current-app fix-up) costs ~5 µs per request, and its only routes are the
    pipeline's catch-all and the pages extensions add, each of which is wrapped here instead.
    """

    async def edged(request: web.Request) -> web.StreamResponse:
        return await edge(gw, request, handler)

    return edged


async def edge(gw: Gateway, request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, errors → JSON, and the completion observers, around every request."""
    ctx = RequestContext.of(request)
    response: web.StreamResponse | None = None
    hooks = gw.runtime.hooks
    for start in hooks.on_start:
        start()
    try:
        try:
            response = await handler(request)
        except GatewayError as err:
            ctx.decision = err.code
            ctx.reason = err.reason
            response = error_response(err, ctx.request_id, gw.runtime.config.envelope)
        except web.HTTPException as exc:
            # aiohttp's own refusals (e.g. body too large) in our JSON shape.
            # Keep the headers the status needs (405 Allow, RFC 9110 §15.5.6).
            kept = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
            http_err = GatewayError(exc.reason, reason=f"http_{exc.status}", headers=kept)
            http_err.status, http_err.code = exc.status, exc.reason.upper().replace(" ", "_")
            ctx.decision, ctx.reason = http_err.code, http_err.reason
            response = error_response(http_err, ctx.request_id, gw.runtime.config.envelope)
        except Exception:
            log.exception("unhandled error in request %s", ctx.request_id)
            internal = GatewayError()
            ctx.decision, ctx.reason = internal.code, "exception"
            response = error_response(internal, ctx.request_id, gw.runtime.config.envelope)
        return response
    finally:
        for observe in hooks.observers:
            try:
                observe(request, response, ctx)
            except Exception:  # an observer must never break a request
                log.exception("observer failed")


async def response_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Request id and extra context headers on every response, streamed ones included."""
    ctx = RequestContext.of(request)
    response.headers["Server"] = SERVER  # aiohttp's default names Python's and its own versions
    response.headers["X-Request-Id"] = ctx.request_id
    for name, value in ctx.response_headers.items():
        response.headers[name] = value


def create_bare_app(gw: Gateway) -> web.Application:
    """An app with the proxy listener's limits and response headers, no middleware, no routes."""
    limits = gw.config.limits
    app = web.Application(
        handler_args={
            "max_field_size": limits.max_header_bytes,
            "max_line_size": limits.max_line_bytes,
            "max_headers": limits.max_headers,
            "keepalive_timeout": limits.idle_timeout,
        },
    )
    app[GATEWAY] = gw
    app.on_response_prepare.append(response_headers)
    return app


def create_proxy_app(gw: Gateway) -> web.Application:
    app = create_bare_app(gw)
    # Pages the gateway serves itself (the dashboard) go first: the catch-all below is the pipeline.
    # Extensions wrap their handlers with with_edge(); this app has no middleware.
    for ext in gw.extensions:
        install_proxy = getattr(ext, "install_proxy", None)
        if install_proxy is not None:
            install_proxy(app, gw)
    catchall.install(app, with_edge(gw, gw.handle))
    return app


def create_admin_app(gw: Gateway) -> web.Application:
    """The admin listener: health, readiness, and whatever admin routes extensions add."""
    app = web.Application(middlewares=[edge_middleware])
    app[GATEWAY] = gw
    app.on_response_prepare.append(response_headers)

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        feed = gw.feed
        propagation = (
            "polling"
            if feed.listening is None
            else "listening"
            if feed.listening
            else "reconnecting"
        )
        try:
            await gw.health.call(
                gw.store.ping,
                "readiness ping",
                limit=min(gw.health.lookup_timeout, READY_TIMEOUT),
                gated=False,  # a probe in its own right, and bounded: answers within a second
            )
        except StoreUnavailable:
            # Not ready (a load balancer should prefer other instances), but say whether cached
            # decisions are still being served within store.outage_grace.
            return json_response(
                {
                    "status": "unavailable",
                    "store": "unreachable",
                    "serving_cached": feed.serving_stale,
                    "propagation": propagation,
                },
                503,
            )
        return json_response(
            {
                "status": "ready",
                "store": "ok",
                "propagation": propagation,
                "config": gw.config.source,
                # Multi-target upstreams none of whose targets is healthy (issue 22); requests to
                # them still try every target ("panic" mode), so this does not make us unready.
                "upstreams_without_healthy_target": gw.balancers.unhealthy(),
            }
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    for ext in gw.extensions:
        install_admin = getattr(ext, "install_admin", None)
        if install_admin is not None:
            install_admin(app, gw)
    return app

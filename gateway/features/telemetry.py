"""Prometheus metrics fed from a gateway, and the ``/metrics`` listener that serves them.

The metrics themselves are defined in :mod:`gateway.features.metrics`; this module feeds them (the
completion observer, cache and balancer hooks, the instrumented store, token counts) and renders
a scrape. With several worker processes a scrape of any worker aggregates all of them
(:func:`render`), so one scrape sees the whole gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from gateway import __version__
from gateway.core.context import RequestContext
from gateway.core.errors import StoreUnavailable
from gateway.features.metricbatch import Children, InFlight, publish, publish_forever
from gateway.features.metrics import (
    AUTH_SECONDS,
    BUILD,
    CACHE_EVENTS,
    DENIALS,
    LAST_RELOAD,
    RELOADS,
    REQUEST_SECONDS,
    REQUESTS,
    STORE_ERRORS,
    STORE_SECONDS,
    TARGET_HEALTHY,
    TARGET_REQUESTS,
    TOKENS,
    UPSTREAM_ERRORS,
    UPSTREAM_SECONDS,
    WORKER_UP,
)

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["config_reloaded", "install", "metrics_app", "render"]

log = logging.getLogger("gateway.telemetry")


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UPSTREAM_KINDS = {
    "upstream_refused": "refused",
    "upstream_tls": "tls",
    "upstream_disconnected": "disconnected",
    "upstream_reset": "reset",
    "upstream_payload": "payload",
    "upstream_timeout": "timeout",
    "upstream_error": "other",
    "upstream_ws": "websocket",
}


def config_reloaded(ok: bool) -> None:
    """Record a config (re)load; the reload machinery calls this."""
    RELOADS.labels("success" if ok else "failure").inc()
    if ok:
        LAST_RELOAD.set(time.time())


_REQUESTS = Children(REQUESTS)
_DENIALS = Children(DENIALS)
_REQUEST_SECONDS = Children(REQUEST_SECONDS)
_UPSTREAM_SECONDS = Children(UPSTREAM_SECONDS)
_AUTH_SECONDS = Children(AUTH_SECONDS)[()]
_UPSTREAM_ERRORS = Children(UPSTREAM_ERRORS)
_CACHE_EVENTS = Children(CACHE_EVENTS)
_TARGET_REQUESTS = Children(TARGET_REQUESTS)
_STATUS_CLASS = {s: f"{s // 100}xx" for s in range(0, 600)}


def observe(request: web.Request, response: web.StreamResponse | None, ctx: RequestContext) -> None:
    """The completion observer: one call per request, after the response."""
    InFlight.n -= 1
    route = ctx.route.name if ctx.route else "unmatched"
    method = request.method
    if method not in _METHODS:
        method = "OTHER"
    status = response.status if response is not None else 0
    status_class = _STATUS_CLASS.get(status) or f"{status // 100}xx"
    _REQUESTS[route, method, status_class, ctx.decision].inc()
    if ctx.decision != "allowed":
        _DENIALS[ctx.decision, ctx.reason or ""].inc()
        kind = _UPSTREAM_KINDS.get(ctx.reason or "")
        if kind is not None:
            _UPSTREAM_ERRORS[(kind,)].inc()
    _REQUEST_SECONDS[(route,)].observe(time.perf_counter() - ctx.started)
    timing = ctx.timing
    if "auth" in timing:
        _AUTH_SECONDS.observe(timing["auth"])
    if "upstream" in timing:
        _UPSTREAM_SECONDS[(route,)].observe(timing["upstream"])


class _InstrumentedStore:
    """Wraps the store methods used on the request path with duration and error metrics."""

    _TIMED = ("find_token", "get_workspace", "get_membership", "changes_since", "record_usage")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        for name in self._TIMED:
            setattr(self, name, self._timed(name))

    def _timed(self, name: str) -> Callable[..., Awaitable[Any]]:
        seconds = STORE_SECONDS.labels(name)
        errors = STORE_ERRORS.labels(name)
        inner = self._inner

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                # Looked up per call, so the wrapped store stays the single source of behaviour.
                return await getattr(inner, name)(*args, **kwargs)
            except StoreUnavailable:
                errors.inc()
                raise
            finally:
                seconds.observe(time.perf_counter() - start)

        return wrapper

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _refresh_token_counts(gw: Gateway, interval: float) -> None:
    while True:
        try:
            for state, n in (await gw.store.count_tokens_by_state(time.time())).items():
                TOKENS.labels(state).set(n)
        except StoreUnavailable:
            pass  # the store's own health metrics and /readyz report the outage
        except Exception:
            # A gauge must not stop updating for good (or fail shutdown) over one bad query.
            log.exception("could not count tokens by state; will retry")
        await asyncio.sleep(interval)


def render() -> tuple[bytes, str]:
    """The exposition text for a scrape: every worker's samples when running multiprocess."""
    publish()  # this process's own counts, up to this request
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def metrics_app(gw: Gateway | None = None) -> web.Application:
    """The ``/metrics`` listener; with ``gw``, it also keeps ``gateway_tokens`` current.

    The token counts scan the whole tokens table (a million rows in the benchmark), so only the
    process that serves scrapes runs them, not every worker.
    """

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    if gw is not None:
        gateway = gw

        async def token_counts(app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(_refresh_token_counts(gateway, 15.0))
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(token_counts)
    return app


def install(gw: Gateway) -> None:
    """Feed the metrics from a gateway: observer, cache hooks, instrumented store."""
    BUILD.labels(__version__, platform.python_version()).set(1)
    WORKER_UP.set(1)
    gw.hooks.on_start += (InFlight.enter,)
    gw.hooks.observers += (observe,)
    gw.background.append(publish_forever)
    cache = gw.cache
    cache.set_hooks(
        on_hit=lambda kind: _CACHE_EVENTS[kind, "hit"].inc(),
        on_miss=lambda kind: _CACHE_EVENTS[kind, "miss"].inc(),
        on_evict=lambda kind: _CACHE_EVENTS[kind, "eviction"].inc(),
    )
    gw.balancers.on_result.append(
        lambda up, target, outcome: _TARGET_REQUESTS[up, target, outcome].inc()
    )
    # Health changes are rare: set at once, not batched.
    gw.balancers.on_health.append(
        lambda up, target, ok: TARGET_HEALTHY.labels(up, target).set(int(ok))
    )
    instrumented: Any = _InstrumentedStore(gw.store)
    cache.store = instrumented
    gw.feed.store = instrumented
    gw.usage.store = instrumented

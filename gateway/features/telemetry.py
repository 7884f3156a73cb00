"""Prometheus metrics: every metric the gateway exports, defined and fed in this one module.

Labels are bounded by construction: route *names* from the config (never raw paths), HTTP methods
from a fixed set, status classes, and the stable error codes and reason ids of
:mod:`gateway.core.errors` — never token ids, workspace ids or anything a client can choose.

With several worker processes, the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before spawning
workers; prometheus-client then writes each worker's samples to files there and a scrape of any
worker aggregates all of them (:func:`render`), so one scrape sees the whole gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from gateway import __version__
from gateway.core.context import RequestContext
from gateway.core.errors import StoreUnavailable

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["config_reloaded", "install", "metrics_app", "render"]

log = logging.getLogger("gateway.telemetry")


class _Pid:
    """This process's pid, asked of the kernel once and again only after a fork."""

    value = os.getpid()

    @classmethod
    def refresh(cls) -> None:
        cls.value = os.getpid()

    @classmethod
    def get(cls) -> int:
        return cls.value


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # prometheus-client's multiprocess values call os.getpid() on every update to notice a fork:
    # a system call per inc/observe, ~10 per request and measured at ~8% of a worker's CPU under
    # load. Its documented hook takes the pid from our function instead: the same pid, cached,
    # and refreshed in a forked child, so a child still writes to its own file
    # (tests/unit/test_metrics_multiprocess.py).
    # This must run before the first metric below is created.
    os.register_at_fork(after_in_child=_Pid.refresh)
    _VALUE_CLASS = values.MultiProcessValue(process_identifier=_Pid.get)  # type: ignore[no-untyped-call]
    values.ValueClass = _VALUE_CLASS

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "gateway_requests_total",
    "Requests handled, by route name, method, status class and decision (allowed or error code).",
    ["route", "method", "status_class", "decision"],
)
DENIALS = Counter(
    "gateway_denials_total", "Refused requests by stable reason id.", ["code", "reason"]
)
REQUEST_SECONDS = Histogram(
    "gateway_request_duration_seconds", "Whole request duration.", ["route"], buckets=_LATENCY
)
AUTH_SECONDS = Histogram(
    "gateway_auth_duration_seconds",
    "Authentication, workspace and scope steps together.",
    buckets=_LATENCY,
)
UPSTREAM_SECONDS = Histogram(
    "gateway_upstream_duration_seconds", "Upstream exchange duration.", ["route"], buckets=_LATENCY
)
UPSTREAM_ERRORS = Counter("gateway_upstream_errors_total", "Upstream failures by kind.", ["kind"])
IN_FLIGHT = Gauge(
    "gateway_requests_in_flight", "Requests being handled now.", multiprocess_mode="livesum"
)
CACHE_EVENTS = Counter(
    "gateway_cache_events_total", "Auth cache hits, misses and evictions.", ["cache", "event"]
)
STORE_SECONDS = Histogram(
    "gateway_store_query_duration_seconds",
    "Store queries on the request path.",
    ["query"],
    buckets=_LATENCY,
)
STORE_ERRORS = Counter("gateway_store_errors_total", "Store queries that failed.", ["query"])
TOKENS = Gauge(
    "gateway_tokens", "Tokens in the store by state.", ["state"], multiprocess_mode="max"
)
RATE_LIMITED = Counter(
    "gateway_rate_limited_total",
    "Requests refused with 429, by rate-limit rule name (failed_auth for the guessing throttle).",
    ["rule"],
)
RATE_LIMIT_ERRORS = Counter(
    "gateway_rate_limit_store_errors_total",
    "Rate-limit checks that could not reach Redis, by the configured outcome.",
    ["mode"],
)
RELOADS = Counter("gateway_config_reloads_total", "Config reloads by result.", ["result"])
LAST_RELOAD = Gauge(
    "gateway_config_last_reload_success_timestamp_seconds",
    "Unix time of the last config that loaded successfully.",
    multiprocess_mode="max",
)
WORKER_UP = Gauge(
    "gateway_worker_up",
    "1 per live worker process (labelled by pid when running several workers).",
    multiprocess_mode="liveall",
)
# Multi-target upstreams (issue 22); target labels are URLs from the config, so bounded.
TARGET_REQUESTS = Counter(
    "gateway_upstream_target_requests_total",
    "Exchanges with each target of a multi-target upstream, by outcome "
    "(ok, connect_failure, failure, timeout).",
    ["upstream", "target", "outcome"],
)
TARGET_HEALTHY = Gauge(
    "gateway_upstream_target_healthy",
    "1 when a target may be chosen (not ejected, passing its health check), per worker.",
    ["upstream", "target"],
    multiprocess_mode="liveall",
)
BUILD = Gauge(
    "gateway_build_info", "Build information.", ["version", "python"], multiprocess_mode="max"
)

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


class _Count:
    """A counter child's increments since the last :func:`publish`, kept in this process."""

    __slots__ = ("child", "n")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.n = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.n += amount

    def publish(self) -> None:
        if self.n:
            n, self.n = self.n, 0.0
            self.child.inc(n)


class _Observations:
    """A histogram child's observations since the last :func:`publish`: counts per bucket and
    their sum, bucketed exactly as ``Histogram.observe`` does (first bound ≥ the value)."""

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        # prometheus-client has no public way to add n observations to a bucket at once: its
        # child keeps one value per bucket (``_buckets``, same order as ``_upper_bounds``) and
        # one for the sum (``_sum``); publish() adds to those, what observe() would have done.
        self.bounds: list[float] = list(child._upper_bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def publish(self) -> None:
        counts = self.counts
        if not any(counts):
            return
        buckets = self.child._buckets
        for i, n in enumerate(counts):
            if n:
                buckets[i].inc(n)
                counts[i] = 0
        total, self.total = self.total, 0.0
        self.child._sum.inc(total)


_PENDING: list[_Count | _Observations] = []  # every accumulator, for publish()


def _local(child: Any) -> Any:
    acc: _Count | _Observations = (
        _Observations(child) if hasattr(child, "_upper_bounds") else _Count(child)
    )
    _PENDING.append(acc)
    return acc


class _Children(dict[tuple[str, ...], Any]):
    """Label values -> an in-process accumulator for the metric's child, one per label set.

    Issue 18: with several workers, every ``inc``/``observe`` of prometheus-client writes to an
    mmapped file under a lock (~10 per request). The request path only adds to plain numbers
    here; :func:`publish` hands them to prometheus-client every :data:`PUBLISH_INTERVAL` and
    before every scrape this process serves, so a scrape sees this worker exactly and the other
    workers at most one interval late. The label sets are bounded (see the module docstring).
    """

    __slots__ = ("metric",)

    def __init__(self, metric: Any) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, key: tuple[str, ...]) -> Any:
        acc = self[key] = _local(self.metric.labels(*key) if key else self.metric)
        return acc


class _InFlight:
    """Requests in progress in this process; published as ``gateway_requests_in_flight``."""

    n = 0

    @classmethod
    def enter(cls) -> None:
        cls.n += 1


# How often each worker hands its counts to prometheus-client (a scrape is at most this stale
# for the other workers' samples).
PUBLISH_INTERVAL = 1.0


def publish() -> None:
    """Hand every count and observation made in this process since the last call to
    prometheus-client (the multiprocess files when several workers run)."""
    for acc in _PENDING:
        acc.publish()
    IN_FLIGHT.set(_InFlight.n)


async def _publish_forever() -> None:
    try:
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL)
            publish()
    finally:
        publish()  # what the last interval counted, when the worker stops


_REQUESTS = _Children(REQUESTS)
_DENIALS = _Children(DENIALS)
_REQUEST_SECONDS = _Children(REQUEST_SECONDS)
_UPSTREAM_SECONDS = _Children(UPSTREAM_SECONDS)
_AUTH_SECONDS = _Children(AUTH_SECONDS)[()]
_UPSTREAM_ERRORS = _Children(UPSTREAM_ERRORS)
_CACHE_EVENTS = _Children(CACHE_EVENTS)
_TARGET_REQUESTS = _Children(TARGET_REQUESTS)
_STATUS_CLASS = {s: f"{s // 100}xx" for s in range(0, 600)}


def observe(request: web.Request, response: web.StreamResponse | None, ctx: RequestContext) -> None:
    """The completion observer: one call per request, after the response."""
    _InFlight.n -= 1
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
    gw.hooks.on_start += (_InFlight.enter,)
    gw.hooks.observers += (observe,)
    gw.background.append(_publish_forever)
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

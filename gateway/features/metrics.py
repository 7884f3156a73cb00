"""Every Prometheus metric the gateway exports, defined in this one module.

Labels are bounded by construction: route *names* from the config (never raw paths), HTTP methods
from a fixed set, status classes, and the stable error codes and reason ids of
:mod:`gateway.core.errors` — never token ids, workspace ids or anything a client can choose.

With several worker processes, the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before spawning
workers; prometheus-client then writes each worker's samples to files there and a scrape of any
worker aggregates all of them (:func:`gateway.features.telemetry.render`), so one scrape sees the
whole gateway. The values are fed by :mod:`gateway.features.telemetry`, most of them in batches
(:mod:`gateway.features.metricbatch`).
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Gauge, Histogram, values

__all__ = [
    "AUTH_SECONDS",
    "BUILD",
    "CACHE_EVENTS",
    "DENIALS",
    "IN_FLIGHT",
    "LAST_RELOAD",
    "RATE_LIMITED",
    "RATE_LIMIT_ERRORS",
    "RELOADS",
    "REQUESTS",
    "REQUEST_SECONDS",
    "STORE_ERRORS",
    "STORE_SECONDS",
    "TARGET_HEALTHY",
    "TARGET_REQUESTS",
    "TOKENS",
    "UPSTREAM_ERRORS",
    "UPSTREAM_SECONDS",
    "WORKER_UP",
]


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

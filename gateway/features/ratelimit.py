"""Rate limits (``rate_limits:``): per token, workspace, route or client address, and failed-auth
throttling per client address. Shared across instances through Redis, or per process without it.

Algorithm: a **sliding log** — each counter is a Redis sorted set of request timestamps, and a
request is admitted while fewer than ``limit`` timestamps lie in the last ``window`` seconds. We
chose it over a fixed window (which admits up to twice the limit across a window boundary) and over
the sliding-window *counter* approximation (off by up to a few percent) because a limit must mean
exactly "at most N in any W seconds", across every instance. Its cost is memory: one entry per
admitted request per counter, i.e. at most ``limit`` entries per key, each expiring with the key.

Atomicity: one Lua script evaluates every rule that applies to a request in one step, on Redis's
clock (``TIME``), so instances with skewed clocks agree, and a request is recorded against all of
its counters or none (a refusal by one rule never consumes another rule's quota).

Redis down: ``on_redis_error`` chooses ``fail_open`` (admit, count the error) or ``fail_closed``
(503 RATE_LIMIT_UNAVAILABLE); after an error Redis is not asked again for a second, so an outage
costs no per-request connect timeouts.

Failed-auth throttling: every 401 except "no credential at all" is recorded against the client's
address; once an address has ``failed_auth.limit`` failures in the window it gets 429 *before* its
token is parsed, hashed or looked up. Only addresses with a recent failure are checked at all, so
well-behaved clients pay nothing for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from cachetools import LRUCache, TTLCache

from gateway.config import Config, RateLimitRule, RateLimits
from gateway.core.context import RequestContext
from gateway.core.errors import AuthenticationError, RateLimited, RateLimiterUnavailable
from gateway.edge.headerpolicy import is_trusted_peer
from gateway.features.metrics import RATE_LIMIT_ERRORS, RATE_LIMITED

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = [
    "Backend",
    "Counter",
    "LocalBackend",
    "Outcome",
    "RateLimiter",
    "RedisBackend",
    "client_address",
    "install",
]

log = logging.getLogger("gateway.ratelimit")

# KEYS: one sorted set per counter. ARGV[1]: a unique member for this request; ARGV[2]: "1" to
# record the request when admitted, "0" to only look; then (window_ms, limit) per key.
# Returns {admitted, count_1, reset_ms_1, count_2, reset_ms_2, ...}.
SLIDING_LOG_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local counts = {}
local admitted = 1
for i = 1, n do
  local window = tonumber(ARGV[1 + 2 * i])
  local limit = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  counts[i] = redis.call('ZCARD', KEYS[i])
  if counts[i] >= limit then admitted = 0 end
end
local out = {admitted}
for i = 1, n do
  local window = tonumber(ARGV[1 + 2 * i])
  if admitted == 1 and ARGV[2] == '1' then
    redis.call('ZADD', KEYS[i], now, ARGV[1])
    redis.call('PEXPIRE', KEYS[i], window)
    counts[i] = counts[i] + 1
  end
  local reset = 0
  local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if oldest[2] then reset = tonumber(oldest[2]) + window - now end
  out[#out + 1] = counts[i]
  out[#out + 1] = reset
end
return out
"""


@dataclass(frozen=True, slots=True)
class Counter:
    key: str
    limit: int
    window: float  # seconds


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer for one counter: how full it is and when its oldest entry leaves the window."""

    counter: Counter
    count: int
    reset: float  # seconds until a slot frees up (0 when the counter is empty)

    @property
    def remaining(self) -> int:
        return max(self.counter.limit - self.count, 0)


class BackendError(Exception):
    """The shared counter store cannot be reached."""


class Backend(Protocol):
    async def hit(self, counters: Sequence[Counter], record: bool) -> tuple[bool, list[Outcome]]:
        """Admit iff every counter is under its limit; when admitted and ``record``, count it."""
        ...

    async def close(self) -> None: ...


class LocalBackend:
    """The same sliding log in this process's memory (no Redis configured).

    Limits then hold per process: with N workers or instances a client may get up to N times the limit.
    The number of keys is bounded (least recently used ones are forgotten).
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._logs: LRUCache[str, deque[float]] = LRUCache(maxsize=max_keys)

    async def hit(self, counters: Sequence[Counter], record: bool) -> tuple[bool, list[Outcome]]:
        now = time.monotonic()
        logs = []
        for c in counters:
            log_ = self._logs.get(c.key)
            if log_ is None:
                log_ = self._logs[c.key] = deque()
            while log_ and log_[0] <= now - c.window:
                log_.popleft()
            logs.append(log_)
        admitted = all(len(lg) < c.limit for lg, c in zip(logs, counters, strict=True))
        outcomes = []
        for lg, c in zip(logs, counters, strict=True):
            if admitted and record:
                lg.append(now)
            # Clamped: float rounding on large clock values can land a hair outside [0, window].
            reset = min(c.window, max(0.0, lg[0] + c.window - now)) if lg else 0.0
            outcomes.append(Outcome(c, len(lg), reset))
        return admitted, outcomes

    async def close(self) -> None:
        self._logs.clear()


class RedisBackend:
    """Counters in Redis, shared by every instance pointing at it."""

    # After a failure, skip Redis for this long (the configured fail mode applies meanwhile).
    COOLDOWN = 1.0

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._errors: tuple[type[BaseException], ...] = (
            redis.RedisError,
            OSError,
            TimeoutError,
        )
        self.client: Any = redis.Redis.from_url(
            url,
            socket_connect_timeout=0.25,
            socket_timeout=0.5,
            health_check_interval=30,
        )
        self._script = self.client.register_script(SLIDING_LOG_LUA)
        self._down_until = 0.0

    async def hit(self, counters: Sequence[Counter], record: bool) -> tuple[bool, list[Outcome]]:
        if time.monotonic() < self._down_until:
            raise BackendError("redis unavailable (cooling down)")
        args: list[Any] = [secrets.token_hex(8), "1" if record else "0"]
        for c in counters:
            args += [max(int(c.window * 1000), 1), c.limit]
        try:
            raw = await self._script(keys=[c.key for c in counters], args=args)
        except self._errors as exc:
            self._down_until = time.monotonic() + self.COOLDOWN
            raise BackendError(str(exc)) from exc
        outcomes = [
            Outcome(c, int(raw[1 + 2 * i]), int(raw[2 + 2 * i]) / 1000)
            for i, c in enumerate(counters)
        ]
        return bool(raw[0]), outcomes

    async def close(self) -> None:
        with contextlib.suppress(*self._errors):
            await self.client.aclose()


def client_address(
    request: web.Request,
    trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    """The caller's address: the peer, or behind trusted proxies the last untrusted hop."""
    peer = request.remote or ""
    if not is_trusted_peer(peer, trusted):
        return peer
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", ()) for h in v.split(",")]
    for hop in reversed(hops):
        if hop and not is_trusted_peer(hop, trusted):
            return hop
    return peer


def _rate_headers(outcome: Outcome, refused: bool) -> dict[str, str]:
    reset = max(math.ceil(outcome.reset), 1 if refused else 0)
    headers = {
        "RateLimit-Limit": str(outcome.counter.limit),
        "RateLimit-Remaining": str(outcome.remaining),
        "RateLimit-Reset": str(reset),
    }
    if refused:
        headers["Retry-After"] = str(reset)
    return headers


class RateLimiter:
    """The pipeline hooks: a check after scopes, a guard before authentication."""

    def __init__(self, gw: Gateway, backend: Backend) -> None:
        self.gw = gw
        self.backend = backend
        # Addresses with a failed authentication in the current window: only these are checked.
        failed = gw.config.rate_limits.failed_auth
        self._suspects: TTLCache[str, bool] = TTLCache(
            maxsize=100_000, ttl=failed.window if failed else 3600.0
        )

    @property
    def settings(self) -> RateLimits:
        return self.gw.runtime.config.rate_limits

    @property
    def config(self) -> Config:
        return self.gw.runtime.config

    # -- the per-request limits --------------------------------------------------------------------

    def counters(self, request: web.Request, ctx: RequestContext) -> list[tuple[str, Counter]]:
        """``(rule name, counter)`` for every rule that applies to this request."""
        settings = self.settings
        out = []
        ident, principal = ctx.identity, ctx.principal
        tt = principal.token_type if principal else None
        for rule in settings.rules:
            if rule.routes and (ctx.route is None or ctx.route.name not in rule.routes):
                continue
            if rule.token_types and (tt is None or not ({tt.name, tt.prefix} & rule.token_types)):
                continue
            parts = []
            for dim in rule.per:
                if dim == "token":
                    # Session callers have no token: their user is the closest equivalent.
                    value = (
                        (principal.token_id or f"user:{principal.user_id}") if principal else None
                    )
                elif dim == "workspace":
                    value = ident.workspace.id if ident else None
                elif dim == "route":
                    value = ctx.route.name if ctx.route else None
                else:
                    value = client_address(request, self.config.trusted_proxies)
                parts.append(f"{dim}={value}")
            key = f"{settings.key_prefix}{rule.name}:" + "|".join(parts)
            out.append((rule.name, Counter(key, rule.limit, rule.window)))
        return out

    async def check(self, request: web.Request, ctx: RequestContext) -> None:
        named = self.counters(request, ctx)
        if not named:
            return
        try:
            admitted, outcomes = await self.backend.hit([c for _, c in named], record=True)
        except BackendError as exc:
            self._backend_failed(exc)
            return
        if admitted:
            tightest = min(outcomes, key=lambda o: o.remaining)
            ctx.response_headers.update(_rate_headers(tightest, refused=False))
            return
        refusing = [
            (name, o) for (name, _), o in zip(named, outcomes, strict=True) if o.remaining == 0
        ]
        name, worst = max(refusing, key=lambda pair: pair[1].reset)
        _count_refusal(name)
        headers = _rate_headers(worst, refused=True)
        ctx.response_headers.update(headers)
        raise RateLimited(
            f"Rate limit exceeded ({worst.counter.limit} requests per "
            f"{worst.counter.window:g} seconds); retry after {headers['Retry-After']} s.",
            reason=f"rate_limit:{name}",
            headers=headers,
        )

    def _backend_failed(self, exc: BackendError) -> None:
        mode = self.settings.on_redis_error
        _count_backend_error(mode)
        log.warning("rate-limit store unreachable (%s); %s", exc, mode)
        if mode == "fail_closed":
            raise RateLimiterUnavailable(reason="rate_limit_store") from None

    # -- failed-authentication throttle ------------------------------------------------------------

    def _failed_auth_counter(self, request: web.Request) -> tuple[str, Counter] | None:
        rule: RateLimitRule | None = self.settings.failed_auth
        if rule is None:
            return None
        addr = client_address(request, self.config.trusted_proxies)
        key = f"{self.settings.key_prefix}{rule.name}:address={addr}"
        return addr, Counter(key, rule.limit, rule.window)

    async def before_auth(self, request: web.Request, ctx: RequestContext) -> None:
        found = self._failed_auth_counter(request)
        if found is None or found[0] not in self._suspects:
            return
        try:
            admitted, (outcome,) = await self.backend.hit([found[1]], record=False)
        except BackendError as exc:
            self._backend_failed(exc)
            return
        if not admitted:
            _count_refusal("failed_auth")
            headers = _rate_headers(outcome, refused=True)
            ctx.response_headers.update(headers)
            raise RateLimited(
                "Too many failed authentication attempts from this address; retry after "
                f"{headers['Retry-After']} s.",
                reason="failed_auth",
                headers=headers,
            )

    async def auth_failed(
        self, request: web.Request, ctx: RequestContext, err: AuthenticationError
    ) -> None:
        if err.reason == "missing":
            return  # no credential at all is not a guess
        found = self._failed_auth_counter(request)
        if found is None:
            return
        addr, counter = found
        self._suspects[addr] = True
        with contextlib.suppress(BackendError):
            await self.backend.hit([counter], record=True)


def _count_refusal(rule: str) -> None:
    RATE_LIMITED.labels(rule).inc()


def _count_backend_error(mode: str) -> None:
    RATE_LIMIT_ERRORS.labels(mode).inc()


def make_backend(settings: RateLimits) -> Backend:
    return RedisBackend(settings.redis) if settings.redis else LocalBackend()


def install(gw: Gateway) -> None:
    # Installed even without rules, so a reload can add some; the backend lives as long as the
    # process (a reload may change rules, not the Redis URL).
    limiter = RateLimiter(gw, make_backend(gw.config.rate_limits))
    gw.hooks.checks += (limiter.check,)
    gw.hooks.pre_auth += (limiter.before_auth,)
    gw.hooks.auth_failed += (limiter.auth_failed,)

    async def close() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await limiter.backend.close()

    gw.closers.append(close)

"""Upstreams with more than one target: choosing one, and knowing which are healthy (issue 22).

Each upstream whose default environment lists several ``targets`` gets a :class:`TargetSet`:

- **Balancing**: round-robin, or least-connections (fewest exchanges in flight from this worker,
  ties broken round-robin).
- **Passive health**: ``health.max_failures`` consecutive connect failures eject a target for
  ``health.backoff`` seconds. When the back-off ends the target is tried again on probation: one
  more connect failure ejects it again at once, one success makes it healthy.
- **Active health** (``health.check``): a ``GET path`` to every target each ``interval``;
  ``unhealthy`` consecutive failures take a target out, ``healthy`` consecutive successes put it
  back. A target must pass both to be chosen.
- When no target is healthy every target is a candidate again (Envoy's "panic" mode): refusing all
  traffic would also stop the passive checks from ever seeing a target recover.

State is per worker process and survives a reload that leaves an upstream's targets and health
settings unchanged. :class:`Balancers` owns the sets and the active-check tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp

from gateway.config import Upstream

__all__ = ["Balancers", "Target", "TargetSet"]

log = logging.getLogger("gateway.balancer")

# (upstream, target, outcome): outcome is ok, connect_failure, failure or timeout.
ResultHook = Callable[[str, str, str], None]
# (upstream, target, healthy)
HealthHook = Callable[[str, str, bool], None]


@dataclass(slots=True)
class Target:
    url: str
    in_flight: int = 0
    failures: int = 0  # consecutive connect failures
    ejected_until: float = 0.0
    probation: bool = False  # back from an ejection, not yet proven
    check_down: bool = False  # taken out by the active check
    check_streak: int = 0  # consecutive active results in the direction away from check_down

    def available(self, now: float) -> bool:
        return now >= self.ejected_until and not self.check_down


class TargetSet:
    """The targets of one upstream and the choice among them."""

    def __init__(self, up: Upstream, ssl_context: ssl.SSLContext | None = None) -> None:
        self.upstream = up
        self.name = up.name
        self.targets = [Target(url) for url in up.targets]
        self.least = up.balance == "least_connections"
        self.ssl_context = ssl_context
        self._next = 0
        self.on_result: list[ResultHook] = []
        self.on_health: list[HealthHook] = []

    def key(self) -> tuple[object, ...]:
        up = self.upstream
        return (up.targets, up.balance, up.health, up.tls)

    # -- choosing ----------------------------------------------------------------------------------

    def pick(self, exclude: set[str]) -> Target | None:
        """A target not in ``exclude``: a healthy one if any, else any (panic); ``None`` if none."""
        now = time.monotonic()
        pool = [t for t in self.targets if t.url not in exclude]
        healthy = [t for t in pool if t.available(now)]
        candidates = healthy or pool
        if not candidates:
            return None
        start = self._next
        self._next += 1
        if self.least:
            n = len(candidates)
            return min((candidates[(start + i) % n] for i in range(n)), key=lambda t: t.in_flight)
        return candidates[start % len(candidates)]

    def healthy_count(self) -> int:
        now = time.monotonic()
        return sum(t.available(now) for t in self.targets)

    # -- passive health ----------------------------------------------------------------------------

    def record(self, target: Target, outcome: str) -> None:
        """The outcome of one exchange with ``target`` (see :data:`ResultHook`)."""
        for hook in self.on_result:
            hook(self.name, target.url, outcome)
        if outcome != "connect_failure":
            # Any answer (even an error status) proves the target accepts connections.
            if target.failures or target.probation:
                target.failures, target.probation = 0, False
                self._health_changed(target)
            return
        target.failures += 1
        health = self.upstream.health
        if target.probation or target.failures >= health.max_failures:
            target.ejected_until = time.monotonic() + health.backoff
            target.failures = 0
            target.probation = True  # when the back-off ends, one more failure ejects again
            log.warning(
                "upstream %s: target %s ejected for %.0fs after connect failures",
                self.name,
                target.url,
                health.backoff,
            )
            self._health_changed(target)

    def _health_changed(self, target: Target) -> None:
        healthy = target.available(time.monotonic())
        for hook in self.on_health:
            hook(self.name, target.url, healthy)

    # -- active health -----------------------------------------------------------------------------

    def checked(self, target: Target, ok: bool) -> None:
        check = self.upstream.health.check
        assert check is not None
        if ok == (not target.check_down):
            target.check_streak = 0  # as expected: nothing moves
            return
        target.check_streak += 1
        if target.check_streak >= (check.healthy if ok else check.unhealthy):
            target.check_down = not ok
            target.check_streak = 0
            if ok:
                target.ejected_until, target.failures, target.probation = 0.0, 0, False
            log.warning(
                "upstream %s: target %s %s by its health check",
                self.name,
                target.url,
                "restored" if ok else "taken out",
            )
            self._health_changed(target)

    async def check_forever(self, client: aiohttp.ClientSession) -> None:
        check = self.upstream.health.check
        assert check is not None
        timeout = aiohttp.ClientTimeout(total=check.timeout)
        ssl_arg: ssl.SSLContext | bool = self.ssl_context or True
        sni = self.upstream.tls.server_name if self.upstream.tls else None

        async def probe(target: Target) -> None:
            try:
                async with client.get(
                    target.url + check.path,
                    timeout=timeout,
                    allow_redirects=False,
                    ssl=ssl_arg if target.url.startswith("https:") else True,
                    server_hostname=sni if target.url.startswith("https:") else None,
                ) as resp:
                    ok = resp.status < 500
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            self.checked(target, ok)

        while True:
            await asyncio.gather(*(probe(t) for t in self.targets))
            await asyncio.sleep(check.interval)


class Balancers:
    """A :class:`TargetSet` per multi-target upstream, kept across reloads; runs active checks."""

    def __init__(self) -> None:
        self.sets: dict[str, TargetSet] = {}
        self._checks: dict[str, asyncio.Task[None]] = {}
        self.on_result: list[ResultHook] = []
        self.on_health: list[HealthHook] = []

    def get(self, name: str) -> TargetSet | None:
        return self.sets.get(name)

    def update(
        self,
        upstreams: Mapping[str, Upstream],
        contexts: Mapping[str, ssl.SSLContext],
        client: aiohttp.ClientSession | None,
    ) -> None:
        """Match the sets to a (re)loaded config; unchanged upstreams keep their health state."""
        wanted: dict[str, TargetSet] = {}
        for name, up in upstreams.items():
            if len(up.targets) < 2:
                continue
            fresh = TargetSet(up, contexts.get(name))
            old = self.sets.get(name)
            if old is not None and old.key() == fresh.key():
                old.ssl_context = fresh.ssl_context
                wanted[name] = old
                continue
            fresh.on_result, fresh.on_health = self.on_result, self.on_health
            for t in fresh.targets:
                fresh._health_changed(t)
            wanted[name] = fresh
        for name in list(self._checks):
            if wanted.get(name) is not self.sets.get(name) or name not in wanted:
                self._checks.pop(name).cancel()
        self.sets = wanted
        if client is not None:
            for name, tset in wanted.items():
                if tset.upstream.health.check is not None and name not in self._checks:
                    self._checks[name] = asyncio.create_task(
                        tset.check_forever(client), name=f"health-check-{name}"
                    )

    def unhealthy(self) -> list[str]:
        """Upstreams with no healthy target right now."""
        return sorted(name for name, s in self.sets.items() if s.healthy_count() == 0)

    async def stop(self) -> None:
        tasks = list(self._checks.values())
        self._checks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

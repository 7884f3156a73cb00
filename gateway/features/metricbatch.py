"""The request path's counts, kept in process and handed to prometheus-client in batches.

Issue 18: with several workers, every ``inc``/``observe`` of prometheus-client writes to an mmapped
file under a lock (~10 per request). The request path adds to plain numbers here instead, and
:func:`publish` hands them over every :data:`PUBLISH_INTERVAL` and before every scrape.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from typing import Any

from gateway.features.metrics import IN_FLIGHT

__all__ = ["PUBLISH_INTERVAL", "Children", "InFlight", "publish", "publish_forever"]


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


class Children(dict[tuple[str, ...], Any]):
    """Label values -> an in-process accumulator for the metric's child, one per label set.

    Issue 18: with several workers, every ``inc``/``observe`` of prometheus-client writes to an
    mmapped file under a lock (~10 per request). The request path only adds to plain numbers
    here; :func:`publish` hands them to prometheus-client every :data:`PUBLISH_INTERVAL` and
    before every scrape this process serves, so a scrape sees this worker exactly and the other
    workers at most one interval late. The label sets are bounded (see :mod:`gateway.features.metrics`).
    """

    __slots__ = ("metric",)

    def __init__(self, metric: Any) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, key: tuple[str, ...]) -> Any:
        acc = self[key] = _local(self.metric.labels(*key) if key else self.metric)
        return acc


class InFlight:
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
    IN_FLIGHT.set(InFlight.n)


async def publish_forever() -> None:
    """Publish every :data:`PUBLISH_INTERVAL` for as long as the worker runs, and once at its end."""
    try:
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL)
            publish()
    finally:
        publish()  # what the last interval counted, when the worker stops

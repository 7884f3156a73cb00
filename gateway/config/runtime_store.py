"""The runtime form of the store sections (``store``'s options, ``cache``): frozen, slotted
dataclasses that :mod:`gateway.store` reads.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CacheConfig", "StoreOptions"]


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """How the gateway treats its store beyond the URL (``store:`` given as a mapping)."""

    # While the store is unreachable, cached decisions keep serving this long (seconds) after the
    # last successful change-feed read, even entries past their cache TTL (stale-while-
    # unavailable); then every cache is dropped and requests fail closed with 503. 0: no grace.
    outage_grace: float = 30.0
    # Network stores only: how long one connect / one query may take before it counts as an outage.
    connect_timeout: float = 2.0
    query_timeout: float = 5.0
    # Issue 23: a store lookup on the request path (cache miss, /readyz) gets this long before the
    # request gets 503 and the circuit opens; while open, one probe per probe_interval goes through.
    lookup_timeout: float = 0.5
    probe_interval: float = 1.0


@dataclass(frozen=True, slots=True)
class CacheConfig:
    size: int = 100_000
    ttl: float = 60.0
    negative_size: int = 100_000
    negative_ttl: float = 10.0
    # How often each worker polls the store's change feed; bounds revocation latency.
    poll_interval: float = 0.25
    # How often last_used_at is written, in one batch.
    usage_flush_interval: float = 5.0

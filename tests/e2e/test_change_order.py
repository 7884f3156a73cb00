"""Issue 23: the PostgreSQL change feed under any interleaving of commits.

A transaction that draws its change number before another but commits after it must not be
skipped by a gateway whose cursor already moved past the later number. The first test makes that
interleaving happen deterministically with a second, real asyncpg connection; the soak makes it
happen by chance, thousands of times, with several concurrent writers and two instances.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from gateway.store.base import Change
from gateway.store.postgres import split_url
from tests.conftest import GatewayFactory
from tests.e2e.test_propagation import two_instances
from tests.e2e.test_store_outage import cache
from tests.support.harness import Upstream, eventually, item_status, refused_within
from tests.support.stores import fresh_postgres_schema


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_postgres_schema() as url:
        yield url


async def test_a_change_committed_after_a_later_one_still_reaches_the_other_instance(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession, pg_url: str
) -> None:
    a, b = await two_instances(make_gateway, upstream, pg_url, poll_interval=0.2)
    await a.services.create_workspace("Acme", "acme", "ws_acme")
    x, tok_x = await a.services.create_token(workspace="acme", name="x", scopes=["items:read"])
    y, tok_y = await a.services.create_token(workspace="acme", name="y", scopes=["items:read"])
    await cache(http, b, tok_x, tok_y)

    dsn, schema = split_url(pg_url)
    assert schema is not None
    other = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        # Another writer (psql, the CLI, another gateway) revokes X and appends its change, but
        # has not committed yet.
        tx = other.transaction()
        await tx.start()
        await other.execute("UPDATE tokens SET revoked_at = $1 WHERE id = $2", time.time(), x.id)
        await other.execute(
            "INSERT INTO changes (entity, entity_id, at) VALUES ('token', $1, $2)",
            x.id,
            time.time(),
        )
        # Meanwhile Y is revoked through instance A. Either it commits first (and B applies it
        # before X's change is visible: the interleaving that used to lose X) or it waits for X's
        # transaction to end.
        revoke_y = asyncio.create_task(a.services.revoke_token(y.id))

        async def y_applied_or_waiting() -> bool:
            if revoke_y.done():
                return await item_status(http, b, tok_y) == 401
            waiting = await other.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                "AND wait_event_type = 'Lock'",
                f"gateway:{schema}",
            )
            return bool(waiting)

        await eventually(y_applied_or_waiting, within=5)
        await tx.commit()
    finally:
        await other.close()
    await revoke_y
    # X's revocation committed now: B refuses it within a second, and Y too.
    took = await refused_within(http, b, tok_x, within=1.0)
    await refused_within(http, b, tok_y, within=1.0)
    print(f"out-of-order revocation reached the other instance in {took * 1000:.0f} ms")


# Scaled by GATEWAY_SOAK_REVOKES and GATEWAY_SOAK_WRITERS for a longer run (the figures in docs/deploy.md).
SOAK_REVOKES = int(os.environ.get("GATEWAY_SOAK_REVOKES", "1200"))
SOAK_WRITERS = int(os.environ.get("GATEWAY_SOAK_WRITERS", "6"))


async def test_concurrent_revocations_soak_none_outlives_a_second(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession, pg_url: str
) -> None:
    """Several writers revoke concurrently through both instances' stores while two instances
    hold every token cached; afterwards each token is checked on both instances against the time
    its own revocation committed."""
    a, b = await two_instances(make_gateway, upstream, pg_url, poll_interval=1.0)
    await a.services.create_workspace("Acme", "acme", "ws_acme")
    made: list[tuple[str, str]] = []

    async def mint(count: int) -> None:
        for i in range(count):
            rec, tok = await a.services.create_token(
                workspace="acme", name=f"s{i}", scopes=["items:read"]
            )
            made.append((rec.id, tok))

    per = SOAK_REVOKES // SOAK_WRITERS
    await asyncio.gather(*(mint(per) for _ in range(SOAK_WRITERS)))
    for gw in (a, b):  # every token cached on both instances
        await cache(http, gw, *(tok for _, tok in made))

    # Tokens revoked but not yet seen refused, per instance: token id -> (token, commit time).
    pending: list[dict[str, tuple[str, float]]] = [{}, {}]
    latencies: list[float] = []
    late: list[tuple[str, float]] = []
    writing = True

    async def writer(w: int) -> None:
        svc = (a, b)[w % 2].services
        for tid, tok in made[w::SOAK_WRITERS]:
            await svc.store.revoke_token(tid, time.time())
            now = committed[tid] = time.monotonic()
            for p in pending:
                p[tid] = (tok, now)

    async def checker(i: int) -> None:
        """Sweeps instance i: each revoked token until it is refused, or reported late once it
        has been accepted more than a second after its revocation committed."""
        gw = (a, b)[i]
        while writing or pending[i]:
            if not pending[i]:
                await asyncio.sleep(0.01)
                continue
            for tid, (tok, committed) in list(pending[i].items()):
                code = await item_status(http, gw, tok)
                age = time.monotonic() - committed
                if code != 200:
                    latencies.append(age)
                    del pending[i][tid]
                elif age > 1.0:
                    late.append((tid, age))
                    del pending[i][tid]

    # When each instance's change feed applied each revocation (commit -> cache invalidated).
    applied: list[dict[str, float]] = [{}, {}]
    committed: dict[str, float] = {}
    for i, gw in enumerate((a, b)):
        _spy(gw.gw.cache, applied[i])
    checkers = [asyncio.create_task(checker(i)) for i in (0, 1)]
    started = time.monotonic()
    await asyncio.gather(*(writer(w) for w in range(SOAK_WRITERS)))
    took = time.monotonic() - started
    writing = False
    await asyncio.gather(*checkers)
    # The acknowledgment reaches the writer a little after the commit, so a feed can apply a
    # change "before" it: those count as 0.
    feed = sorted(
        max(0.0, seen[tid] - committed[tid]) for seen in applied for tid in committed if tid in seen
    )
    never = sum(tid not in seen for seen in applied for tid in committed)
    print(
        f"{len(made)} revocations by {SOAK_WRITERS} writers in {took:.1f}s "
        f"({len(made) / took:.0f}/s); applied by each instance's feed after commit: p50 "
        f"{_ms(feed, 0.5)}, p99 {_ms(feed, 0.99)}, max {_ms(feed, 1.0)}; "
        f"never applied: {never}; accepted over 1 s after commit: {len(late)}"
    )
    assert (never, late) == (0, [])
    assert len(latencies) == 2 * len(made)
    assert feed[-1] < 1.0


def _spy(cache: Any, seen: dict[str, float]) -> None:
    """Record when ``cache`` first applies a token change from now on."""
    apply = cache.apply

    def recording(change: Change) -> None:
        if change.entity == "token":
            seen.setdefault(change.entity_id, time.monotonic())
        apply(change)

    cache.apply = recording


def _ms(sorted_values: list[float], q: float) -> str:
    return (
        f"{sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))] * 1000:.0f} ms"
    )

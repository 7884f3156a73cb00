"""Issue 8: store outages. The gateway reaches PostgreSQL through a TCP relay the test cuts and
restores: cached decisions keep serving for store.outage_grace, unknown tokens fail closed with
503 STORE_UNAVAILABLE, /readyz says so, and the gateway reconnects by itself.

Issue 23: the same through a relay that hangs (swallows packets, no RST): each request waits at
most store.lookup_timeout, later misses fail at once, /readyz answers within a second, the grace
counts from the last change-feed read and entries past their TTL serve for all of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from gateway.store.postgres import split_url
from tests.conftest import GatewayFactory
from tests.support.calls import call
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.stores import fresh_postgres_schema, postgres_url_or_skip
from tests.support.tcpproxy import TcpProxy

T = TypeVar("T")
GRACE = 2.0
OUTAGE_CORE = CORE.replace(
    'store: "{store}"',
    "store:\n"
    '  url: "{store}"\n'
    f"  outage_grace: {GRACE}\n"
    "  connect_timeout: 0.5\n"
    "  query_timeout: 1\n",
).replace("poll_interval: 0.1", "poll_interval: 0.2")


@pytest.fixture
async def relay() -> AsyncIterator[TcpProxy]:
    parts = urlsplit(postgres_url_or_skip())
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def gw(
    make_gateway: GatewayFactory, upstream: Upstream, relay: TcpProxy
) -> AsyncIterator[RunningGateway]:
    async for g in _behind(relay, make_gateway, upstream, OUTAGE_CORE):
        yield g


# Entries expire a second after they are cached; the grace is three times that.
SHORT_TTL_CORE = OUTAGE_CORE.replace(
    "cache: {poll_interval: 0.2,", "cache: {ttl: 1, poll_interval: 0.2,"
).replace(f"outage_grace: {GRACE}", "outage_grace: 3")


@pytest.fixture
async def short_ttl_gw(
    make_gateway: GatewayFactory, upstream: Upstream, relay: TcpProxy
) -> AsyncIterator[RunningGateway]:
    assert SHORT_TTL_CORE != OUTAGE_CORE
    async for g in _behind(relay, make_gateway, upstream, SHORT_TTL_CORE):
        yield g


async def _behind(
    relay: TcpProxy, make_gateway: GatewayFactory, upstream: Upstream, config: str
) -> AsyncIterator[RunningGateway]:
    """A gateway whose PostgreSQL store is reached through ``relay``, in a fresh schema."""
    base = urlsplit(postgres_url_or_skip())
    async with fresh_postgres_schema() as url:
        through_relay = url.replace(base.netloc, f"{base.username}@127.0.0.1:{relay.port}")
        assert through_relay != url
        g = await make_gateway(
            config,
            store=through_relay,
            up=upstream.url,
            sandbox=upstream.url,
            timeout=2,
            trusted="10.0.0.1/32",
        )
        await g.services.create_workspace("Acme", "acme", "ws_acme")
        yield g


async def item(http: aiohttp.ClientSession, gw: RunningGateway, tok: str) -> tuple[int, str | None]:
    """GET /api/items/1 with ``tok``: the status and the error code (``None`` when served)."""
    headers = {"Authorization": f"Bearer {tok}", "X-Workspace-Id": "acme"}
    status, body = await call(http, "GET", f"{gw.url}/api/items/1", headers)
    assert isinstance(body, dict), body  # every answer here is JSON: the upstream's or an error
    return status, (body.get("error") or {}).get("code")


async def cache(http: aiohttp.ClientSession, gw: RunningGateway, *toks: str) -> None:
    """Put ``toks`` (and their workspace) in the gateway's cache for sure: once its feed has
    applied every change so far, since a change applied during a lookup keeps it uncached."""
    latest = await gw.services.store.latest_change()

    async def caught_up() -> bool:
        return gw.gw.feed.seq >= latest

    await eventually(caught_up, within=5)
    for tok in toks:
        assert await item(http, gw, tok) == (200, None)
        assert gw.gw.cache.cached_token(gw.gw.hasher(tok)) is not None


async def readyz(http: aiohttp.ClientSession, gw: RunningGateway) -> tuple[int, dict[str, object]]:
    async with http.get(f"{gw.admin_url}/readyz") as r:
        return r.status, await r.json()


async def test_outage_serves_cached_decisions_for_the_grace_then_recovers(
    gw: RunningGateway, http: aiohttp.ClientSession, relay: TcpProxy
) -> None:
    _, cached = await gw.services.create_token(workspace="acme", name="c", scopes=["items:read"])
    _, unknown_to_cache = await gw.services.create_token(
        workspace="acme", name="u", scopes=["items:read"]
    )
    await cache(http, gw, cached)

    await relay.stop()  # every gateway connection to PostgreSQL is cut; new ones are refused
    cut = time.monotonic()
    assert await item(http, gw, cached) == (200, None)  # cached decision, within the grace
    assert await item(http, gw, unknown_to_cache) == (503, "STORE_UNAVAILABLE")  # fail closed

    async def reports_outage() -> bool:
        status, body = await readyz(http, gw)
        return status == 503 and body["store"] == "unreachable" and body["serving_cached"] is True

    await eventually(reports_outage, within=2)

    async def cached_refused() -> bool:
        return await item(http, gw, cached) == (503, "STORE_UNAVAILABLE")

    await eventually(cached_refused, within=GRACE + 2)
    assert time.monotonic() - cut >= GRACE * 0.9  # not dropped before the grace ran out
    status, body = await readyz(http, gw)
    assert status == 503 and body["serving_cached"] is False

    await relay.start()  # the database is reachable again: no restart, no operator action

    async def recovered() -> bool:
        return (await readyz(http, gw))[0] == 200 and await item(http, gw, unknown_to_cache) == (
            200,
            None,
        )

    await eventually(recovered, within=5)
    assert await item(http, gw, cached) == (200, None)
    await eventually(lambda: _listening(http, gw), within=5)


async def _listening(http: aiohttp.ClientSession, gw: RunningGateway) -> bool:
    return (await readyz(http, gw))[1].get("propagation") == "listening"


async def test_killed_database_sessions_cost_no_request(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    """pg_terminate_backend on every gateway session (a failover, an admin cleaning up): the
    pool replaces the dead connections and the next cache miss is answered, not refused."""
    _, tok = await gw.services.create_token(workspace="acme", name="t", scopes=["items:read"])
    schema = gw.config.store.rpartition("schema=")[2]
    conn = await asyncpg.connect(postgres_url_or_skip())
    try:
        killed = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name IN ($1, $2)",
            f"gateway:{schema}",
            f"gateway-listener:{schema}",
        )
    finally:
        await conn.close()
    assert len(killed) >= 2
    assert await item(http, gw, tok) == (200, None)  # a cache miss: read on a new connection


async def _revoke_behind_the_gateways_back(gw: RunningGateway, token_id: str) -> None:
    """Revoke in the database directly (the relay is hung): another instance or the CLI would."""
    dsn, schema = split_url(postgres_url_or_skip() + "?schema=" + _schema(gw))
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or "public"})
    try:
        async with conn.transaction():
            await conn.execute(
                "UPDATE tokens SET revoked_at = $1 WHERE id = $2", time.time(), token_id
            )
            await conn.execute(
                "INSERT INTO changes (entity, entity_id, at) VALUES ('token', $1, $2)",
                token_id,
                time.time(),
            )
    finally:
        await conn.close()


def _schema(gw: RunningGateway) -> str:
    return gw.config.store.rpartition("schema=")[2]


async def timed(coro: Awaitable[T]) -> tuple[T, float]:
    start = time.monotonic()
    result = await coro
    return result, time.monotonic() - start


async def test_a_hung_store_fails_fast_and_the_grace_counts_from_the_last_feed_read(
    gw: RunningGateway,
    http: aiohttp.ClientSession,
    relay: TcpProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.store")
    _, cached = await gw.services.create_token(workspace="acme", name="c", scopes=["items:read"])
    victim, revoked_meanwhile = await gw.services.create_token(
        workspace="acme", name="v", scopes=["items:read"]
    )
    _, unknown = await gw.services.create_token(workspace="acme", name="u", scopes=["items:read"])
    await cache(http, gw, cached, revoked_meanwhile)

    relay.pause()  # packets swallowed both ways: no RST, no FIN, nothing refused
    paused = time.monotonic()
    # The first miss waits for the lookup timeout (0.5 s by default), not for TCP or the query
    # timeout, then gets 503 and opens the circuit.
    first, took = await timed(item(http, gw, unknown))
    assert first == (503, "STORE_UNAVAILABLE") and took < 0.9, took
    # Later misses are refused without asking the store.
    later = []
    for _ in range(20):
        again, took_again = await timed(item(http, gw, unknown))
        assert again == (503, "STORE_UNAVAILABLE") and took_again < 0.25, took_again
        later.append(took_again)
    (status, body), ready_took = await timed(readyz(http, gw))
    assert status == 503 and body["serving_cached"] is True and ready_took < 1.0, ready_took
    print(
        f"hung store: first miss 503 in {took * 1000:.0f} ms, later misses in at most "
        f"{max(later) * 1000:.1f} ms, /readyz in {ready_took * 1000:.0f} ms"
    )
    assert await item(http, gw, cached) == (200, None)  # within the grace

    await _revoke_behind_the_gateways_back(gw, victim.id)  # this gateway cannot see it

    async def cached_refused() -> bool:
        return await item(http, gw, cached) == (503, "STORE_UNAVAILABLE")

    await eventually(cached_refused, within=GRACE + 1)
    # The grace ran from the last feed read before the hang (at most one poll interval earlier).
    refused_after = time.monotonic() - paused
    print(f"cached decisions refused {refused_after:.2f} s into the hang (grace {GRACE} s)")
    assert GRACE - 0.5 <= refused_after <= GRACE + 1.0
    assert await item(http, gw, revoked_meanwhile) == (503, "STORE_UNAVAILABLE")
    (status, _), took = await timed(readyz(http, gw))
    assert status == 503 and took < 1.0

    relay.resume()

    async def recovered() -> bool:
        return (await readyz(http, gw))[0] == 200 and await item(http, gw, unknown) == (200, None)

    await eventually(recovered, within=5)
    assert await item(http, gw, revoked_meanwhile) == (401, "UNAUTHORIZED")
    assert await item(http, gw, cached) == (200, None)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("store unreachable" in m for m in messages) == 1, messages
    assert sum("store reachable again" in m for m in messages) == 1, messages


async def test_entries_past_their_ttl_serve_for_the_whole_grace(
    short_ttl_gw: RunningGateway, http: aiohttp.ClientSession, relay: TcpProxy
) -> None:
    gw = short_ttl_gw
    _, tok = await gw.services.create_token(workspace="acme", name="c", scopes=["items:read"])
    await cache(http, gw, tok)  # token and workspace, for 1 s
    relay.pause()
    paused = time.monotonic()

    async def refused() -> bool:
        return await item(http, gw, tok) == (503, "STORE_UNAVAILABLE")

    # Served past the entries' 1 s TTL, until the 3 s grace ends, and refused then.
    await eventually(refused, within=4.5, interval=0.1)
    assert time.monotonic() - paused >= 2.5
    relay.resume()

    async def served() -> bool:
        return await item(http, gw, tok) == (200, None)

    await eventually(served, within=5)

"""Issue 8: store outages. The gateway reaches PostgreSQL through a TCP relay the test cuts and
restores: cached decisions keep serving for store.outage_grace, unknown tokens fail closed with
503 STORE_UNAVAILABLE, /readyz says so, and the gateway reconnects by itself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from tests.conftest import GatewayFactory
from tests.e2e.core_config import CORE
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.stores import fresh_postgres_schema, postgres_url_or_skip
from tests.support.tcpproxy import TcpProxy

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
    base = urlsplit(postgres_url_or_skip())
    async with fresh_postgres_schema() as url:
        through_relay = url.replace(base.netloc, f"{base.username}@127.0.0.1:{relay.port}")
        assert through_relay != url
        g = await make_gateway(
            OUTAGE_CORE,
            store=through_relay,
            up=upstream.url,
            sandbox=upstream.url,
            timeout=2,
            trusted="10.0.0.1/32",
        )
        await g.services.create_workspace("Acme", "acme", "ws_acme")
        yield g


async def call(http: aiohttp.ClientSession, gw: RunningGateway, tok: str) -> tuple[int, str | None]:
    headers = {"Authorization": f"Bearer {tok}", "X-Workspace-Id": "acme"}
    async with http.get(f"{gw.url}/api/items/1", headers=headers) as r:
        body = await r.json()
        return r.status, (body.get("error") or {}).get("code")


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
    assert await call(http, gw, cached) == (200, None)  # now in the cache

    await relay.stop()  # every gateway connection to PostgreSQL is cut; new ones are refused
    cut = time.monotonic()
    assert await call(http, gw, cached) == (200, None)  # cached decision, within the grace
    assert await call(http, gw, unknown_to_cache) == (503, "STORE_UNAVAILABLE")  # fail closed

    async def reports_outage() -> bool:
        status, body = await readyz(http, gw)
        return status == 503 and body["store"] == "unreachable" and body["serving_cached"] is True

    await eventually(reports_outage, within=2)

    async def cached_refused() -> bool:
        return await call(http, gw, cached) == (503, "STORE_UNAVAILABLE")

    await eventually(cached_refused, within=GRACE + 2)
    assert time.monotonic() - cut >= GRACE * 0.9  # not dropped before the grace ran out
    status, body = await readyz(http, gw)
    assert status == 503 and body["serving_cached"] is False

    await relay.start()  # the database is reachable again: no restart, no operator action

    async def recovered() -> bool:
        return (await readyz(http, gw))[0] == 200 and await call(http, gw, unknown_to_cache) == (
            200,
            None,
        )

    await eventually(recovered, within=5)
    assert await call(http, gw, cached) == (200, None)
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
    assert await call(http, gw, tok) == (200, None)  # a cache miss: read on a new connection

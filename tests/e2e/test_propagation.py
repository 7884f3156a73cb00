"""Issue 8: two gateway instances on one PostgreSQL database; a change made through one reaches the
other's caches within a second — by NOTIFY normally, by the change-sequence resync when a
notification is lost or the listening connection drops.

Each instance is a full in-process Gateway with its own caches, store pool, listener and ports;
they share nothing but the database (a fresh schema per test, dropped afterwards).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from tests.conftest import GatewayFactory
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway, Upstream, eventually, item_status, refused_within
from tests.support.stores import fresh_postgres_schema, postgres_url_or_skip

OPS = 'operator_workspace: "ops"\n'


def config(poll_interval: float) -> str:
    # These tests are about propagation, not about a slow store: a lookup that takes longer than
    # the default 0.5 s on a loaded CI host must not open the store circuit (test_store_outage.py
    # tests that bound).
    text = CORE.replace("poll_interval: 0.1", f"poll_interval: {poll_interval}")
    text = text.replace('store: "{store}"', 'store: {url: "{store}", lookup_timeout: 5}')
    return text + OPS


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_postgres_schema() as url:
        yield url


async def two_instances(
    make_gateway: GatewayFactory, upstream: Upstream, url: str, poll_interval: float
) -> tuple[RunningGateway, RunningGateway]:
    subs = {"up": upstream.url, "sandbox": upstream.url, "timeout": 2, "trusted": "10.0.0.1/32"}
    a = await make_gateway(config(poll_interval), store=url, **subs)
    b = await make_gateway(config(poll_interval), store=url, **subs)
    assert a.gw.cache is not b.gw.cache and a.gw.store is not b.gw.store
    return a, b


async def listening(http: aiohttp.ClientSession, gw: RunningGateway) -> bool:
    async with http.get(f"{gw.admin_url}/readyz") as r:
        return r.status == 200 and (await r.json())["propagation"] == "listening"


async def test_changes_through_one_instance_reach_the_other_within_a_second(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession, pg_url: str
) -> None:
    a, b = await two_instances(make_gateway, upstream, pg_url, poll_interval=1.0)
    await eventually(lambda: listening(http, b), within=5)
    # Push the periodic resync out of the way on b: every refusal below must come from NOTIFY.
    b.gw.feed.interval = 600.0
    b.gw.feed.wake()
    svc = a.services
    for name, slug in (("Ops", "ops"), ("Acme", "acme"), ("Gone", "gone")):
        await svc.create_workspace(name, slug, f"ws_{slug}")
    _, operator = await svc.create_token(workspace="ops", name="op", scopes=["admin:all"])
    rec, revoked = await svc.create_token(workspace="acme", name="r", scopes=["items:read"])
    _, other_ws = await svc.create_token(workspace="gone", name="g", scopes=["items:read"])
    await svc.create_user("ann@example.com")
    await svc.add_member("acme", "ann@example.com", "member")
    _, pat = await svc.create_token(
        workspace="acme", name="pat", type="pat", user="ann@example.com"
    )
    rot, rotated = await svc.create_token(workspace="acme", name="rot", scopes=["items:read"])
    exp, expiring = await svc.create_token(workspace="acme", name="exp", scopes=["items:read"])
    for tok in (revoked, pat, rotated, expiring):
        assert await item_status(http, b, tok) == 200  # now cached by b
    headers = {"Authorization": f"Bearer {other_ws}", "X-Workspace-Id": "gone"}
    async with http.get(f"{b.url}/api/items/1", headers=headers) as r:
        assert r.status == 200

    # revoke through a's admin API
    started = time.monotonic()
    async with http.post(
        f"{a.admin_url}/admin/tokens/{rec.id}/revoke",
        headers={"Authorization": f"Bearer {operator}"},
    ) as r:
        assert r.status == 200
    took = await refused_within(http, b, revoked, within=1.0)
    assert time.monotonic() - started < 1.0
    print(f"revocation reached the other instance in {took * 1000:.0f} ms")
    assert await item_status(http, a, revoked) == 401

    # membership removal (the PAT inherits ann's permissions), rotation without grace, expiry,
    # workspace deletion: each reaches b within a second
    await svc.remove_member("acme", "ann@example.com")
    await refused_within(http, b, pat, within=1.0)
    await svc.rotate_token(rot.id, 0)
    await refused_within(http, b, rotated, within=1.0)
    # an expiry moved into the past (the store-level write; no service exposes it yet)
    assert await svc.store.set_token_expiry(exp.id, time.time() - 1)
    await refused_within(http, b, expiring, within=1.0)
    await svc.delete_workspace("gone")

    async def ws_refused() -> bool:
        async with http.get(f"{b.url}/api/items/1", headers=headers) as r:
            return r.status in (401, 403, 404)

    await eventually(ws_refused, within=1.0, interval=0.01)


async def test_a_lost_notification_is_caught_by_the_resync(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession, pg_url: str
) -> None:
    a, b = await two_instances(make_gateway, upstream, pg_url, poll_interval=0.5)
    await eventually(lambda: listening(http, b), within=5)
    await a.services.create_workspace("Acme", "acme", "ws_acme")
    rec, tok = await a.services.create_token(workspace="acme", name="t", scopes=["items:read"])
    assert await item_status(http, b, tok) == 200
    # Revoke with triggers disabled for this session: the change row is written, no NOTIFY is sent.
    conn = await asyncpg.connect(postgres_url_or_skip())
    try:
        schema = pg_url.rpartition("schema=")[2]
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                f'UPDATE "{schema}".tokens SET revoked_at = $1 WHERE id = $2', time.time(), rec.id
            )
            await conn.execute(
                f'INSERT INTO "{schema}".changes (entity, entity_id, at) VALUES ($1, $2, $3)',
                "token",
                rec.id,
                time.time(),
            )
    finally:
        await conn.close()
    await refused_within(http, b, tok, within=1.0)


async def test_a_dropped_listener_reconnects_and_nothing_is_missed(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession, pg_url: str
) -> None:
    a, b = await two_instances(make_gateway, upstream, pg_url, poll_interval=1.0)
    await eventually(lambda: listening(http, b), within=5)
    await a.services.create_workspace("Acme", "acme", "ws_acme")
    rec, tok = await a.services.create_token(workspace="acme", name="t", scopes=["items:read"])
    assert await item_status(http, b, tok) == 200
    schema = pg_url.rpartition("schema=")[2]
    conn = await asyncpg.connect(postgres_url_or_skip())
    try:
        killed = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            f"gateway-listener:{schema}",
        )
    finally:
        await conn.close()
    assert len(killed) == 2  # a's and b's listeners
    await a.services.revoke_token(rec.id)  # possibly while b is not listening
    await refused_within(http, b, tok, within=1.0)
    await eventually(lambda: listening(http, b), within=5)

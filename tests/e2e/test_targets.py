"""Upstreams with several targets (issue 22): three real upstream servers on loopback ports.

One is stopped mid-load: idempotent requests never fail (a connect failure is retried on another
target), non-idempotent ones are never sent twice (counted at the upstreams), the stopped target is
ejected, and it is back in rotation once it returns and its back-off has passed.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import REGISTRY

from gateway.features.metricbatch import publish
from tests.conftest import GatewayFactory
from tests.support.harness import RunningGateway, Upstream

CONFIG = """
store: "{store}"
listeners: {proxy: "127.0.0.1:0", admin: "127.0.0.1:0"}
token_types:
  - {name: live, prefix: gw_live_, kind: api_key, environment: live}
upstreams:
  api:
    targets: [{targets}]
    balance: {balance}
    connect_timeout: 1
    timeout: 5
    health: {health}
routes:
  - {name: public, path: /public/**, public: true}
"""


@pytest.fixture
async def three() -> AsyncIterator[list[Upstream]]:
    ups = [Upstream(name=f"t{i}") for i in range(3)]
    for up in ups:
        await up.start()
    yield ups
    for up in ups:
        await up.stop()


async def gateway(
    make_gateway: GatewayFactory, ups: list[Upstream], balance: str, health: str
) -> RunningGateway:
    return await make_gateway(
        CONFIG,
        targets=", ".join(f'"{u.url}"' for u in ups),
        balance=balance,
        health=health,
    )


async def poster_once(
    http: aiohttp.ClientSession, gw: RunningGateway, rid: str, ok: set[str], failed: set[str]
) -> None:
    async with http.post(f"{gw.url}/public/{rid}", data=b"{}") as r:
        await r.read()
        (ok if r.status == 200 else failed).add(rid)


def target_healthy(up: Upstream) -> float | None:
    return REGISTRY.get_sample_value(
        "gateway_upstream_target_healthy", {"upstream": "api", "target": up.url}
    )


async def test_one_target_stopped_mid_load(
    make_gateway: GatewayFactory, three: list[Upstream], http: aiohttp.ClientSession
) -> None:
    gw = await gateway(make_gateway, three, "round_robin", "{max_failures: 2, backoff: 1}")
    ids = itertools.count()
    get_failures: list[int] = []
    posts_ok: set[str] = set()
    posts_failed: set[str] = set()
    stop = asyncio.Event()

    async def getter() -> None:
        while not stop.is_set():
            async with http.get(f"{gw.url}/public/g/{next(ids)}") as r:
                await r.read()
                if r.status != 200:
                    get_failures.append(r.status)

    async def poster() -> None:
        while not stop.is_set():
            await poster_once(http, gw, f"p{next(ids)}", posts_ok, posts_failed)

    victim = three[1]
    port = victim.port

    def start_load() -> list[asyncio.Task[None]]:
        stop.clear()
        return [asyncio.create_task(getter()) for _ in range(4)] + [
            asyncio.create_task(poster()) for _ in range(2)
        ]

    load = start_load()
    await asyncio.sleep(0.3)  # load on all three first (a duration of load, not a wait)
    stop.set()
    await asyncio.gather(*load)
    assert all(up.seen for up in three)
    await victim.stop()
    stopped_at = len(victim.seen)
    # Three POSTs in a row, round-robin over three targets none of which is ejected yet: the one
    # that meets the stopped target fails with 502 instead of being sent to another target.
    for _ in range(3):
        await poster_once(http, gw, f"p{next(ids)}", posts_ok, posts_failed)
    assert len(posts_failed) == 1
    load = start_load()
    try:
        await asyncio.sleep(0.5)
        # Ejected: its health series says so, and no request reached it meanwhile.
        assert target_healthy(victim) == 0
        assert len(victim.seen) == stopped_at
        async with http.get(f"{gw.admin_url}/readyz") as r:
            assert (await r.json())["upstreams_without_healthy_target"] == []
        # Back: a new server on the same port is in rotation once the back-off has passed.
        returned = Upstream(name="t1-again", port=port)
        await returned.start()
        three[1] = returned
        deadline = time.monotonic() + 5
        while not returned.seen:
            assert time.monotonic() < deadline, "target not back in rotation"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*load)

    assert get_failures == []
    assert len(posts_ok) > 10
    # Every POST reached at most one upstream, once; the refused ones reached none.
    seen_posts = [s.path.rsplit("/", 1)[1] for up in (*three, victim) for s in up.seen]
    seen_posts = [p for p in seen_posts if p.startswith("p")]
    assert len(seen_posts) == len(set(seen_posts))
    assert set(seen_posts) == posts_ok
    assert not posts_failed & set(seen_posts)
    # Only POSTs that met the stopped target before its ejection (max_failures: 2) failed.
    assert len(posts_failed) <= 2
    publish()  # counts made so far, in this process (gateway.features.metricbatch publishes per interval)
    ok = REGISTRY.get_sample_value(
        "gateway_upstream_target_requests_total",
        {"upstream": "api", "target": three[0].url, "outcome": "ok"},
    )
    refused = REGISTRY.get_sample_value(
        "gateway_upstream_target_requests_total",
        {"upstream": "api", "target": victim.url, "outcome": "connect_failure"},
    )
    assert ok and ok > 10
    assert refused and refused >= 2


async def test_active_health_check_takes_a_target_out_and_back(
    make_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    sick = {"t0": False, "t1": False}

    def health_of(name: str) -> Handler:
        async def health(request: web.Request) -> web.Response:
            return web.Response(status=503 if sick[name] else 200)

        return health

    ups = [Upstream(name=n, extra_routes=[("GET", "/health", health_of(n))]) for n in sick]
    for up in ups:
        await up.start()
    try:
        gw = await gateway(
            make_gateway,
            ups,
            "least_connections",
            "{check: {path: /health, interval: 0.05, healthy: 1, unhealthy: 2}}",
        )

        async def unhealthy() -> list[str]:
            async with http.get(f"{gw.admin_url}/readyz") as r:
                return list((await r.json())["upstreams_without_healthy_target"])

        sick["t0"] = True
        deadline = time.monotonic() + 5
        while target_healthy(ups[0]) != 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        before = len(ups[0].seen)
        for _ in range(10):
            async with http.get(f"{gw.url}/public/x") as r:
                assert r.status == 200
        assert len(ups[0].seen) == before  # only t1 served them
        assert await unhealthy() == []
        sick["t1"] = True
        while await unhealthy() != ["api"]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        sick["t0"] = sick["t1"] = False
        while await unhealthy() != []:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        for up in ups:
            await up.stop()


def test_targets_and_url_are_exclusive() -> None:
    from gateway import config as config_mod

    with pytest.raises(config_mod.ConfigError, match="needs exactly one of url or targets"):
        config_mod.load_text(
            "store: sqlite:///x.db\nupstreams:\n  api: {url: 'http://a', targets: ['http://b']}\n"
        )
    with pytest.raises(config_mod.ConfigError, match=r"targets\[1\]: is listed twice"):
        config_mod.load_text(
            "store: sqlite:///x.db\nupstreams:\n  api: {targets: ['http://a', 'http://a']}\n"
        )

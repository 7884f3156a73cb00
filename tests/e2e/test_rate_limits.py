"""Issue 8: rate limits per token, workspace and route, shared across instances through Redis,
fail-open/fail-closed when Redis is down, and failed-auth throttling per client address.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter

import aiohttp
from prometheus_client import REGISTRY

from gateway.features.metricbatch import publish
from tests.conftest import GatewayFactory
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway, Upstream
from tests.support.require import env_or_skip
from tests.support.served import free_port


async def start(
    make_gateway: GatewayFactory, upstream: Upstream, text: str, **subs: object
) -> RunningGateway:
    subs.setdefault("trusted", "10.0.0.1/32")
    return await make_gateway(text, up=upstream.url, sandbox=upstream.url, timeout=2, **subs)


def metric(name: str, **labels: str) -> float:
    publish()  # counts made so far, in this process (gateway.features.metricbatch publishes per interval)
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def get(
    http: aiohttp.ClientSession,
    gw: RunningGateway,
    tok: str | None,
    path: str = "/api/items/1",
    ws: str = "acme",
    **headers: str,
) -> tuple[int, dict[str, str], dict[str, object]]:
    h = {"X-Workspace-Id": ws, **headers}
    if tok:
        h["Authorization"] = f"Bearer {tok}"
    async with http.get(gw.url + path, headers=h) as r:
        return r.status, dict(r.headers), await r.json()


async def test_100_per_minute_holds_across_two_instances_sharing_redis(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    redis_url = env_or_skip("GATEWAY_TEST_REDIS", "Redis")
    limits = f"""
rate_limits:
  redis: "{redis_url}"
  key_prefix: "test:{secrets.token_hex(6)}:"
  rules:
    - {{name: per-token, per: token, limit: 100, window: 60}}
"""
    a = await start(make_gateway, upstream, CORE + limits)
    b = await start(make_gateway, upstream, CORE + limits)
    await a.services.create_workspace("Acme", "acme", "ws_acme")
    _, tok = await a.services.create_token(workspace="acme", name="t", scopes=["items:read"])
    _, other = await a.services.create_token(workspace="acme", name="o", scopes=["items:read"])

    results: list[tuple[int, dict[str, str], dict[str, object]]] = []
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with sem:
            results.append(await get(http, (a, b)[i % 2], tok))

    await asyncio.gather(*(one(i) for i in range(150)))
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {200: 100, 429: 50}, statuses  # exactly the limit, across both instances
    for status, headers, body in results:
        assert headers["RateLimit-Limit"] == "100"
        if status == 429:
            assert body["error"]["code"] == "RATE_LIMITED"  # type: ignore[index]
            assert headers["RateLimit-Remaining"] == "0"
            assert 1 <= int(headers["Retry-After"]) <= 60
            assert headers["RateLimit-Reset"] == headers["Retry-After"]
    remaining = sorted(int(h["RateLimit-Remaining"]) for s, h, _ in results if s == 200)
    assert remaining == list(range(100))  # every admitted request saw its own, distinct count
    # another token has its own counter
    assert (await get(http, b, other))[0] == 200


async def test_rules_per_workspace_token_type_and_route_with_the_local_limiter(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    limits = """
rate_limits:
  rules:
    - {name: workspace, per: workspace, limit: 5, window: 60}
    - {name: live-tokens, per: token, limit: 2, window: 60, token_types: [live]}
    - {name: reports-route, per: route, limit: 1, window: 60, routes: [reports]}
"""
    gw = await start(make_gateway, upstream, CORE + limits)
    svc = gw.services
    for slug in ("acme", "beta", "gamma"):
        await svc.create_workspace(slug.title(), slug, f"ws_{slug}")
    _, live = await svc.create_token(workspace="acme", name="l", scopes=["items:read"])
    _, test = await svc.create_token(workspace="acme", name="t", scopes=["items:read"], type="test")
    refused_before = metric("gateway_rate_limited_total", rule="live-tokens")

    assert [(await get(http, gw, live))[0] for _ in range(3)] == [200, 200, 429]
    status, headers, body = await get(http, gw, live)
    assert status == 429 and "2 requests per 60 seconds" in body["error"]["message"]  # type: ignore[index]
    assert metric("gateway_rate_limited_total", rule="live-tokens") == refused_before + 2
    # the live-token rule does not apply to test tokens; the workspace rule counts both, and the
    # live token's refused requests consumed none of the workspace's quota
    assert [(await get(http, gw, test))[0] for _ in range(4)] == [200, 200, 200, 429]
    status, headers, _ = await get(http, gw, test)
    assert status == 429 and headers["RateLimit-Limit"] == "5"

    # a route limit is shared by every caller of that route
    _, beta = await svc.create_token(workspace="beta", name="b", scopes=["reports:read"])
    _, gamma = await svc.create_token(workspace="gamma", name="g", scopes=["reports:read"])
    assert (await get(http, gw, beta, "/reports/1", ws="beta"))[0] == 200
    assert (await get(http, gw, gamma, "/reports/2", ws="gamma"))[0] == 429
    # …and only that route
    _, beta_items = await svc.create_token(workspace="beta", name="bi", scopes=["items:read"])
    status, headers, _ = await get(http, gw, beta_items, ws="beta")
    # headers describe the tightest applicable counter: the live-token rule (1 of 2 left), not
    # beta's workspace (3 of 5 left)
    assert status == 200 and headers["RateLimit-Remaining"] == "1"
    assert headers["RateLimit-Limit"] == "2"


async def test_redis_unreachable_fails_closed_or_open_as_configured(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    port = free_port()  # nothing listens there

    def limits(mode: str) -> str:
        return f"""
rate_limits:
  redis: "redis://127.0.0.1:{port}/0"
  on_redis_error: {mode}
  rules:
    - {{name: per-token, per: token, limit: 100, window: 60}}
"""

    closed = await start(make_gateway, upstream, CORE + limits("fail_closed"))
    opened = await start(make_gateway, upstream, CORE + limits("fail_open"))
    await closed.services.create_workspace("Acme", "acme", "ws_acme")
    _, tok = await closed.services.create_token(workspace="acme", name="t", scopes=["items:read"])
    errors_before = metric("gateway_rate_limit_store_errors_total", mode="fail_closed")

    status, _, body = await get(http, closed, tok)
    assert status == 503 and body["error"]["code"] == "RATE_LIMIT_UNAVAILABLE"  # type: ignore[index]
    assert metric("gateway_rate_limit_store_errors_total", mode="fail_closed") > errors_before
    status, headers, _ = await get(http, opened, tok)
    assert status == 200 and "RateLimit-Limit" not in headers
    # deny by default stays in force either way: no credential is still 401, not 200 or 503
    assert (await get(http, opened, None))[0] == 401
    assert (await get(http, closed, None))[0] == 401


async def test_failed_auth_throttle_refuses_guessers_before_any_lookup(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    limits = """
rate_limits:
  failed_auth: {limit: 5, window: 60}
"""
    # the test client is the trusted proxy; X-Forwarded-For names the real client
    gw = await start(make_gateway, upstream, CORE + limits, trusted="127.0.0.1/32")
    await gw.services.create_workspace("Acme", "acme", "ws_acme")
    _, good = await gw.services.create_token(workspace="acme", name="t", scopes=["items:read"])
    guesser = {"X-Forwarded-For": "203.0.113.7"}
    honest = {"X-Forwarded-For": "203.0.113.8"}
    # no credential at all is not guessing
    for _ in range(8):
        assert (await get(http, gw, None, **guesser))[0] == 401
    guesses = [good[:-6] + secrets.token_hex(3) for _ in range(5)]  # right shape, wrong secret
    for g in guesses:
        assert (await get(http, gw, g, **guesser))[0] == 401
    misses = metric("gateway_cache_events_total", cache="token", event="miss")
    negative_hits = metric("gateway_cache_events_total", cache="negative", event="hit")
    for g in [*guesses, good[:-1] + "x"]:
        status, headers, body = await get(http, gw, g, **guesser)
        assert status == 429 and body["error"]["code"] == "RATE_LIMITED"  # type: ignore[index]
        assert 1 <= int(headers["Retry-After"]) <= 60
    # refused before the token was even hashed: no cache or store lookup happened
    assert metric("gateway_cache_events_total", cache="token", event="miss") == misses
    assert metric("gateway_cache_events_total", cache="negative", event="hit") == negative_hits
    # while throttled, even a valid token from that address waits; other clients are unaffected
    assert (await get(http, gw, good, **guesser))[0] == 429
    assert (await get(http, gw, good, **honest))[0] == 200
    assert (await get(http, gw, guesses[0], **honest))[0] == 401

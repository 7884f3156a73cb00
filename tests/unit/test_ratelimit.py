"""The two rate-limit backends agree: a sliding log, all-or-none across counters, peeks are free."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest

from gateway.features.ratelimit import Backend, Counter, LocalBackend, RedisBackend
from tests.support.harness import eventually
from tests.support.require import env_or_skip


@pytest.fixture(params=["local", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    b: Backend
    if request.param == "local":
        b = LocalBackend()
    else:
        b = RedisBackend(env_or_skip("GATEWAY_TEST_REDIS", "Redis"))
    yield b
    await b.close()


def key() -> str:
    return f"test:unit:{secrets.token_hex(6)}"


async def test_sliding_log_admits_exactly_the_limit_then_frees_slots_one_by_one(
    backend: Backend,
) -> None:
    c = Counter(key(), limit=2, window=0.6)
    first = time.monotonic()
    admitted, (o,) = await backend.hit([c], record=True)
    assert admitted and o.count == 1 and o.remaining == 1 and 0 < o.reset <= 0.6
    await asyncio.sleep(0.3)  # time is this test's input (request spacing), not a race to wait out
    assert (await backend.hit([c], record=True))[0]
    admitted, (o,) = await backend.hit([c], record=True)
    assert not admitted and o.count == 2 and o.remaining == 0
    assert 0 < o.reset <= 0.35  # the first request leaves the window ~0.3 s from now
    # looking does not consume a slot
    assert not (await backend.hit([c], record=False))[0]

    async def slot_free() -> bool:
        return (await backend.hit([c], record=False))[0]

    await eventually(slot_free, within=2, interval=0.01)
    assert time.monotonic() - first >= 0.55
    # one slot freed (the first request left the window); the second request still counts, where
    # a fixed window would now have forgotten both
    assert (await backend.hit([c], record=True))[0]
    admitted, (o,) = await backend.hit([c], record=True)
    assert not admitted and o.count == 2


async def test_a_refusal_by_one_counter_consumes_no_other(backend: Backend) -> None:
    tight, loose = Counter(key(), 1, 60), Counter(key(), 10, 60)
    assert (await backend.hit([tight, loose], record=True))[0]
    admitted, (t, lo) = await backend.hit([tight, loose], record=True)
    assert not admitted and t.count == 1 and lo.count == 1
    assert (await backend.hit([loose], record=True))[1][0].count == 2

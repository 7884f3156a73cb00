"""Shared-timer request deadlines behave like ``asyncio.timeout`` around each request."""

from __future__ import annotations

import asyncio

import pytest

from gateway.edge.deadline import Deadlines


async def _guarded(deadlines: Deadlines, timeout: float | None, work: float) -> str:
    deadline = deadlines.enter(timeout)
    try:
        try:
            await asyncio.sleep(work)
            return "done"
        finally:
            timed_out = deadlines.leave(deadline)
    except asyncio.CancelledError:
        if not timed_out:
            raise
    return "timeout"


async def test_each_request_gets_its_own_deadline_from_one_timer() -> None:
    d = Deadlines()
    results = await asyncio.gather(
        _guarded(d, 0.05, 0.2),
        _guarded(d, 0.05, 0.0),
        _guarded(d, 0.3, 0.1),  # a reload with a longer timeout, while others are in flight
        _guarded(d, 0.02, 0.2),  # … and one with a shorter timeout after it
        _guarded(d, None, 0.1),
    )
    assert list(results) == ["timeout", "done", "done", "timeout", "done"]
    assert not any(d._pending.values()) and not d._expired
    d.close()


async def test_timer_re_arms_for_requests_still_in_flight() -> None:
    d = Deadlines()
    first = asyncio.create_task(_guarded(d, 0.1, 0.0))
    await first
    await asyncio.sleep(0.05)
    # Started after the first one finished: its deadline is later than the armed timer's.
    assert await _guarded(d, 0.1, 0.3) == "timeout"
    d.close()


async def test_an_outside_cancellation_is_not_a_timeout() -> None:
    d = Deadlines()
    task = asyncio.create_task(_guarded(d, 5.0, 1.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    d.close()


async def test_an_outside_cancellation_racing_the_deadline_wins() -> None:
    d = Deadlines()

    async def both() -> str:
        deadline = d.enter(0.01)
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # someone else cancels too, before the deadline is left
            if not d.leave(deadline):
                raise
        return "timeout"

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(both())
    d.close()

"""Choosing among an upstream's targets: balancing, passive ejection, probation, panic mode."""

from __future__ import annotations

import time

from gateway.config import TargetHealth, Upstream
from gateway.forward.balancer import TargetSet

URLS = ("http://a", "http://b", "http://c")


def targets(balance: str = "round_robin", **health: float) -> TargetSet:
    up = Upstream(
        name="api",
        url=URLS[0],
        targets=URLS,
        balance=balance,  # type: ignore[arg-type]
        health=TargetHealth(**health),  # type: ignore[arg-type]
    )
    return TargetSet(up)


def test_round_robin_visits_every_target_in_turn() -> None:
    ts = targets()
    picks = [ts.pick(set()) for _ in range(6)]
    assert [t.url for t in picks if t] == [*URLS, *URLS]


def test_least_connections_prefers_the_idlest_target() -> None:
    ts = targets("least_connections")
    ts.targets[0].in_flight, ts.targets[1].in_flight, ts.targets[2].in_flight = 3, 1, 2
    assert all((t := ts.pick(set())) and t.url == "http://b" for _ in range(5))
    assert (t := ts.pick({"http://b"})) and t.url == "http://c"


def test_connect_failures_eject_then_probation_ejects_on_one_more() -> None:
    ts = targets(max_failures=2, backoff=60)
    b = ts.targets[1]
    ts.record(b, "connect_failure")
    assert b.available(time.monotonic())  # one failure is not enough
    ts.record(b, "connect_failure")
    assert not b.available(time.monotonic())
    assert {t.url for t in (ts.pick(set()) for _ in range(10)) if t} == {"http://a", "http://c"}
    b.ejected_until = 0.0  # the back-off has passed
    ts.record(b, "connect_failure")  # on probation: one failure is enough
    assert not b.available(time.monotonic())
    b.ejected_until = 0.0
    ts.record(b, "ok")  # proven: back to needing max_failures
    ts.record(b, "connect_failure")
    assert b.available(time.monotonic())


def test_a_failed_answer_is_not_a_connect_failure() -> None:
    ts = targets(max_failures=1)
    ts.record(ts.targets[0], "failure")
    ts.record(ts.targets[0], "timeout")
    assert ts.healthy_count() == 3


def test_panic_mode_when_no_target_is_healthy() -> None:
    ts = targets(max_failures=1, backoff=60)
    for t in ts.targets:
        ts.record(t, "connect_failure")
    assert ts.healthy_count() == 0
    assert ts.pick(set()) is not None  # still tried: refusing would hide a recovery
    assert ts.pick(set(URLS)) is None

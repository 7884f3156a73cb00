"""OpenTelemetry traces, received by a real OTLP/HTTP receiver on a loopback port and decoded with
opentelemetry-proto: the client's trace is continued, the upstream gets the child's context, ids,
parents and attributes are right, refusals are traced, and a dead collector costs requests nothing.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import GatewayFactory
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.otlp import OTLPReceiver
from tests.support.served import free_port

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind


@pytest.fixture
async def receiver() -> AsyncIterator[OTLPReceiver]:
    r = OTLPReceiver()
    await r.start()
    yield r
    await r.stop()


def tracing(endpoint: str, ratio: float, timeout: float) -> str:
    return f"""
tracing:
  endpoint: "{endpoint}"
  service_name: gw-under-test
  sampling_ratio: {ratio}
  timeout: {timeout}
"""


async def start(
    make_gateway: GatewayFactory,
    upstream: Upstream,
    endpoint: str,
    ratio: float = 1.0,
    timeout: float = 2.0,
) -> RunningGateway:
    g = await make_gateway(
        CORE + tracing(endpoint, ratio, timeout),
        up=upstream.url,
        sandbox=upstream.url,
        timeout=2,
        trusted="10.0.0.1/32",
    )
    await g.services.create_workspace("Acme", "acme", "ws_acme")
    return g


def parse_traceparent(value: str | None) -> tuple[str, str, str]:
    assert value is not None
    version, trace_id, span_id, flags = value.split("-")
    assert version == "00" and len(trace_id) == 32 and len(span_id) == 16
    return trace_id, span_id, flags


def sampled_flag(flags: str) -> bool:
    return bool(int(flags, 16) & 1)  # W3C trace-flags bit 0 (bit 1 says the id is random)


async def arrived(receiver: OTLPReceiver, trace_id: str, n: int) -> bool:
    return len(receiver.trace(trace_id)) >= n


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.access"]


async def test_a_clients_trace_is_continued_to_the_upstream_and_exported_with_its_attributes(
    make_gateway: GatewayFactory,
    upstream: Upstream,
    receiver: OTLPReceiver,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    g = await start(make_gateway, upstream, receiver.endpoint)
    record, token = await g.services.create_token(workspace="acme", name="t", scopes=["items:read"])
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Workspace-Id": "acme",
        "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
        "tracestate": "vendor=opaque",
    }
    async with http.get(f"{g.url}/api/items/7?q=secret", headers=headers) as r:
        assert r.status == 200
    sent_trace, sent_parent, flags = parse_traceparent(upstream.last.header("traceparent"))
    assert sent_trace == CLIENT_TRACE and sampled_flag(flags)  # same trace, still sampled
    assert sent_parent != CLIENT_SPAN  # the gateway's own span, not the client's
    assert upstream.last.header("tracestate") == "vendor=opaque"
    (line,) = access_lines(caplog)
    assert line["trace_id"] == CLIENT_TRACE  # logs and traces join
    await eventually(lambda: arrived(receiver, CLIENT_TRACE, 2), within=10)

    server, child = sorted(receiver.trace(CLIENT_TRACE), key=lambda s: s.kind)
    assert server.kind == SERVER and server.parent_span_id == CLIENT_SPAN
    assert child.kind == CLIENT and child.parent_span_id == server.span_id
    assert child.span_id == sent_parent  # what the upstream received is the exchange's span
    assert server.name == "GET /api/items/**" and server.service == "gw-under-test"
    assert server.start_ns <= child.start_ns <= child.end_ns <= server.end_ns
    assert server.attributes == {
        "http.request.method": "GET",
        "http.response.status_code": 200,
        "http.route": "/api/items/**",
        "gateway.route": "items-read",
        "gateway.decision": "allowed",
        "gateway.request_id": r.headers["X-Request-Id"],
        "gateway.workspace.id": "ws_acme",
        "gateway.token.id": record.id,
    }
    assert child.attributes == {"gateway.upstream": "api", "http.response.status_code": 200}
    everything = repr([server, child])
    assert token not in everything and token[:20] not in everything and "secret" not in everything


async def test_a_request_without_context_starts_a_trace_and_refusals_are_traced(
    make_gateway: GatewayFactory,
    upstream: Upstream,
    receiver: OTLPReceiver,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    g = await start(make_gateway, upstream, receiver.endpoint)
    _, ro = await g.services.create_token(workspace="acme", name="ro", scopes=["items:read"])
    async with http.get(f"{g.url}/api/items/1", headers={"Authorization": f"Bearer {ro}"}) as r:
        assert r.status == 200
    new_trace, _, flags = parse_traceparent(upstream.last.header("traceparent"))
    assert sampled_flag(flags)
    async with http.get(
        f"{g.url}/api/items/1",
        headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},  # no credential: 401
    ) as r:
        assert r.status == 401
    async with http.post(
        f"{g.url}/api/items", headers={"Authorization": f"Bearer {ro}", "traceparent": "garbage"}
    ) as r:
        assert r.status == 403
    async with http.get(f"{g.admin_url}/healthz") as r:  # a probe: not traced
        assert r.status == 200
    seen = len(upstream.seen)
    allowed, unauthorized, forbidden, probe = access_lines(caplog)
    assert "trace_id" not in probe
    await g.stop()  # flushes what is queued
    assert seen == 1  # the refusals never reached the upstream

    (root, _) = sorted(receiver.trace(new_trace), key=lambda s: s.kind)
    assert root.parent_span_id == "" and allowed["trace_id"] == new_trace
    (refused,) = receiver.trace(CLIENT_TRACE)  # no upstream span: nothing was forwarded
    assert refused.parent_span_id == CLIENT_SPAN and unauthorized["trace_id"] == CLIENT_TRACE
    assert refused.attributes["gateway.decision"] == "UNAUTHORIZED"
    assert refused.attributes["http.response.status_code"] == 401
    assert refused.attributes["gateway.reason"] == unauthorized["reason"]
    # A malformed traceparent starts a new trace instead of failing the request.
    (denied,) = receiver.trace(str(forbidden["trace_id"]))
    assert denied.parent_span_id == "" and denied.attributes["gateway.decision"] == "FORBIDDEN"
    assert denied.attributes["gateway.token.id"] and "gateway.workspace.id" in denied.attributes
    assert (
        len(receiver.spans) == 4
    )  # two for the allowed request, one per refusal, none for /healthz


async def test_sampling_ratio_zero_records_no_new_trace_but_follows_a_sampled_client(
    make_gateway: GatewayFactory,
    upstream: Upstream,
    receiver: OTLPReceiver,
    http: aiohttp.ClientSession,
) -> None:
    g = await start(make_gateway, upstream, receiver.endpoint, ratio=0.0)
    _, tok = await g.services.create_token(workspace="acme", name="t", scopes=["items:read"])
    auth = {"Authorization": f"Bearer {tok}"}
    async with http.get(f"{g.url}/api/items/1", headers=auth) as r:
        assert r.status == 200
    unsampled, _, flags = parse_traceparent(upstream.last.header("traceparent"))
    assert not sampled_flag(flags)  # the upstream is told not to record it either
    sampled = {**auth, "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}
    async with http.get(f"{g.url}/api/items/1", headers=sampled) as r:
        assert r.status == 200
    await eventually(lambda: arrived(receiver, CLIENT_TRACE, 2), within=10)
    assert receiver.trace(unsampled) == []  # exported in order: it would have come first
    assert len(receiver.trace(CLIENT_TRACE)) == 2


async def test_a_dead_collector_neither_slows_nor_fails_requests(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1/traces"  # a loopback port where nothing listens
    export_timeout = 2.0
    g = await start(make_gateway, upstream, dead, timeout=export_timeout)
    _, tok = await g.services.create_token(workspace="acme", name="t", scopes=["items:read"])
    auth = {"Authorization": f"Bearer {tok}"}
    slowest = 0.0
    deadline = time.monotonic() + 1.5  # past an export interval: exports fail meanwhile
    n = 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        async with http.get(f"{g.url}/api/items/{n}", headers=auth) as r:
            assert r.status == 200
        slowest = max(slowest, time.monotonic() - started)
        n += 1
    # An export waited for in a request would hold it for a connection attempt plus the exporter's
    # ~1 s retry backoff, up to the export timeout; the bound leaves room for a loaded machine.
    assert slowest < export_timeout, slowest
    started = time.monotonic()
    await g.stop()
    assert time.monotonic() - started < export_timeout + 1.5  # at most one export timeout


def test_without_a_tracing_section_opentelemetry_is_never_imported() -> None:
    code = """
import asyncio, sys
from gateway import config
from gateway.app import Gateway
cfg = config.load_text('''
store: "sqlite:///:memory:"
token_types: [{name: live, prefix: gw_live_, kind: api_key}]
upstreams: {api: "http://127.0.0.1:9"}
routes: [{name: r, path: /x, upstream: api}]
''')
gw = Gateway(cfg)
assert gw.hooks.upstream_headers == (), gw.hooks.upstream_headers
assert not [m for m in sys.modules if m.startswith("opentelemetry")], "imported"
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr

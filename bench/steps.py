"""``python -m bench.steps``: CPU µs per step of a cache-hit request, measured in one process.

The benchmark says what a request costs in all; this says where the gateway's own synchronous
steps spend it. One gateway (the benchmark's config: full auth, identity headers, 44 routes, the
buffered access log to ``/dev/null``) serves a loopback upstream and an aiohttp client, all in one
uvloop process; each step below is wrapped to add its thread CPU time (``thread_time_ns``, so
other processes on the core do not count; the clock's own median cost is subtracted) and the
totals are divided by the number of requests. Async steps (the upstream exchange, relaying the
response) and aiohttp's own layers are not wrapped: the benchmark's gateway minus aiohttp-floor
CPU, minus the total here, is what they add.

``--count-calls`` counts instead of timing: the Python and C function calls per request in the
whole process (client and upstream included, the same for every revision), through
``sys.setprofile``. Unlike time, the count does not move with the host, so two revisions'
counts say exactly whether a change added work to the cache-hit path.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

import gateway.core.context
import gateway.features.telemetry
import gateway.forward.headers
import gateway.forward.relay
from bench.servers import gateway_config
from gateway.edge import accesslog, logbuffer
from gateway.pipeline import authn, memo, routing, run, workspace
from tests.support.harness import Upstream, start_gateway, write_config

SPENT: collections.Counter[str] = collections.Counter()
STEPS = [
    (gateway.core.context.RequestContext, "of"),
    (run, "is_preflight"),
    (run, "normalize"),
    (routing.Router, "match"),
    (authn.Authenticator, "token_key"),
    (memo.HitMemo, "token"),
    (authn.Authenticator, "admit"),
    (workspace.WorkspaceResolver, "requested"),
    (memo.HitMemo, "workspace"),
    (run, "upstream_base"),
    (gateway.forward.headers.UpstreamHeaders, "build_headers"),
    (gateway.forward.relay, "_drop_set"),
    (accesslog, "log_access"),
    (gateway.features.telemetry, "observe"),
]


def _clock_cost() -> int:
    laps = []
    for _ in range(20000):
        t = time.thread_time_ns()
        laps.append(time.thread_time_ns() - t)
    return sorted(laps)[len(laps) // 2]


def _wrap(owner: Any, name: str, cost: int) -> None:
    f = getattr(owner, name)

    @functools.wraps(f)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.thread_time_ns()
        try:
            return f(*args, **kwargs)
        finally:
            SPENT[name] += time.thread_time_ns() - t - cost

    setattr(owner, name, timed)


CALLS: collections.Counter[str] = collections.Counter()


def _count(frame: Any, event: str, arg: Any) -> None:
    if event == "call":
        CALLS["python"] += 1
    elif event == "c_call":
        CALLS["c"] += 1


class _Upstream:
    def __init__(self, url: str) -> None:
        self.url, self.scheme = url, "http"


async def _main(requests: int, concurrency: int, count_calls: bool = False) -> None:
    cost = 0 if count_calls else _clock_cost()  # counting calls times nothing
    if not count_calls:
        for owner, name in STEPS:
            _wrap(owner, name, cost)
    up = Upstream()
    await up.start()
    tmp = Path(tempfile.mkdtemp(prefix="gateway-steps-"))
    text = gateway_config(0, 0, 0, tmp / "store.db", _Upstream(up.url))  # type: ignore[arg-type]
    text = text.replace(
        'listeners:\n  proxy: "127.0.0.1:0"\n  admin: "127.0.0.1:0"\n  metrics: "127.0.0.1:0"\n',
        'listeners: {proxy: "127.0.0.1:0", admin: "127.0.0.1:0"}\n',
    )
    sink = logbuffer.buffer_access_log()  # as `gateway serve` sets it up, writing to /dev/null
    sink.fd = os.open(os.devnull, os.O_WRONLY)
    logging.getLogger("gateway.access").setLevel(logging.INFO)
    gw = await start_gateway(write_config(tmp, text))
    try:
        await gw.services.create_workspace("Acme", "acme", "ws_acme")
        _, token = await gw.services.create_token(
            workspace="acme", name="steps", scopes=["items:read"]
        )
        headers = {"Authorization": f"Bearer {token}", "X-Workspace-Id": "acme"}
        async with aiohttp.ClientSession() as http:

            async def load(n: int) -> None:
                async def one() -> None:
                    for _ in range(n):
                        async with http.get(f"{gw.url}/api/small", headers=headers) as r:
                            assert r.status == 200, r.status
                            await r.read()

                await asyncio.gather(*(one() for _ in range(concurrency)))

            await load(50)  # warm: caches, memo, pools
            SPENT.clear()
            per = max(1, requests // concurrency)
            if count_calls:
                sys.setprofile(_count)
            try:
                await load(per)
            finally:
                sys.setprofile(None)
        n = per * concurrency
        if count_calls:
            print(f"{n} cache-hit requests, calls per request in the whole process:")
            print(f"{CALLS['python'] / n:8.1f}  Python calls\n{CALLS['c'] / n:8.1f}  C calls")
            return
        print(f"{n} cache-hit requests; clock cost {cost} ns per reading (subtracted)")
        for name, ns in SPENT.most_common():
            print(f"{ns / n / 1000:7.2f} µs  {name}")
        print(f"{sum(SPENT.values()) / n / 1000:7.2f} µs  all of the above")
    finally:
        await gw.stop()
        await up.stop()
        os.close(sink.fd)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.steps", description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=6400)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument(
        "--count-calls",
        action="store_true",
        help="count function calls per request (sys.setprofile) instead of timing steps",
    )
    args = p.parse_args()
    uvloop.run(_main(args.requests, args.concurrency, args.count_calls))


if __name__ == "__main__":
    main()

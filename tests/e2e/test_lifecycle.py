"""Reload without restart and graceful shutdown, on `gateway serve` as a real process (issue 9).

* SIGHUP and a change of the file reload the config; a bad file is refused with the reason logged
  and the old config keeps serving; a request in flight finishes on the config it started with;
  a kept-alive connection survives the reload.
* SIGTERM stops accepting, lets the request in flight finish, flushes ``last_used_at`` and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.support.harness import Upstream, eventually
from tests.support.rawhttp import parse, request_bytes
from tests.support.served import Served, cli, free_port

CONFIG = """
listeners: {proxy: "127.0.0.1:{port}"}
store: "sqlite:///{db}"
token_types: [{name: live, prefix: gw_live_}]
upstreams: {api: "{up}"}
cache: {poll_interval: 0.1, usage_flush_interval: 3600}
limits: {shutdown_grace: 15}
routes:
  - {name: items, path: /{prefix}/**, scopes: [items:read]}
"""


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, asyncio.Event, asyncio.Event]]:
    """The recording upstream with a route that holds its answer until the test releases it."""
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.json_response({"slow": True})

    up = Upstream(extra_routes=[("GET", "/{p}/slow", slow)])
    await up.start()
    yield up, entered, release
    release.set()
    await up.stop()


class Setup:
    def __init__(self, tmp: Path, up: Upstream) -> None:
        self.port = free_port()
        self.db = tmp / "g.db"
        self.cfg = tmp / "gateway.yaml"
        self.up = up
        self.write(prefix="api")

    def write(self, *, prefix: str, port: int | None = None, raw: str | None = None) -> None:
        text = raw if raw is not None else CONFIG.replace("{prefix}", prefix)
        text = text.replace("{port}", str(port or self.port)).replace("{db}", str(self.db))
        self.cfg.write_text(text.replace("{up}", self.up.url))


@pytest.fixture
async def setup(
    tmp_path: Path, upstream: tuple[Upstream, asyncio.Event, asyncio.Event]
) -> AsyncIterator[tuple[Setup, Served, str, str]]:
    s = Setup(tmp_path, upstream[0])
    await asyncio.to_thread(cli, s.cfg, "workspace", "create", "--name", "Acme", "--slug", "acme")
    made = await asyncio.to_thread(
        cli, s.cfg, "token", "create", "--workspace", "acme", "--name", "t", "--scope", "items:read"
    )
    served = await Served(s.cfg, s.port).start()
    try:
        yield s, served, made["token"], made["id"]
    finally:
        served.kill()


async def get(url: str, token: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url, headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        await r.read()
        return r.status


async def test_sighup_reloads_and_in_flight_requests_finish_on_their_config(
    setup: tuple[Setup, Served, str, str],
    upstream: tuple[Upstream, asyncio.Event, asyncio.Event],
) -> None:
    s, served, token, _ = setup
    _, entered, release = upstream
    assert await get(f"{served.url}/api/x", token) == 200
    assert await get(f"{served.url}/v2/x", token) == 404

    # A kept-alive connection opened before the reload ...
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    auth = [("Authorization", f"Bearer {token}")]
    writer.write(request_bytes("GET", "/api/keep", auth))
    first = await reader.readuntil(b"}")
    assert parse(first, False).status == 200

    # ... and a request in flight on the old route while the config changes under it.
    in_flight = asyncio.create_task(get(f"{served.url}/api/slow", token))
    await asyncio.wait_for(entered.wait(), 10)
    s.write(prefix="v2")
    served.signal(signal.SIGHUP)

    async def v2_live() -> bool:
        return await get(f"{served.url}/v2/x", token) == 200

    await eventually(v2_live, within=3)
    assert await get(f"{served.url}/api/x", token) == 404
    release.set()
    assert await asyncio.wait_for(in_flight, 10) == 200

    # The old connection still works, under the new routes.
    writer.write(request_bytes("GET", "/v2/keep", auth))
    second = await reader.readuntil(b"}")
    assert parse(second, False).status == 200
    writer.close()


async def test_a_bad_file_is_refused_and_the_old_config_keeps_serving(
    setup: tuple[Setup, Served, str, str],
) -> None:
    s, served, token, _ = setup
    s.write(prefix="api", raw=CONFIG.replace("{prefix}/**", "v2/**, upstream: nowhere"))
    served.signal(signal.SIGHUP)

    async def refused_logged() -> bool:
        return "reload (SIGHUP) refused" in served.log_text()

    await eventually(refused_logged, within=5)
    log = served.log_text()
    assert "routes[0].upstream" in log and "nowhere" in log
    assert await get(f"{served.url}/api/x", token) == 200
    assert await get(f"{served.url}/v2/x", token) == 404

    # A change to a restart-only section is refused too, and says so.
    s.write(prefix="v3", port=free_port())
    served.signal(signal.SIGHUP)

    async def restart_only_logged() -> bool:
        return "change only on restart" in served.log_text()

    await eventually(restart_only_logged, within=5)
    assert await get(f"{served.url}/v3/x", token) == 404
    assert await get(f"{served.url}/api/x", token) == 200


async def test_a_changed_file_is_picked_up_without_a_signal(
    setup: tuple[Setup, Served, str, str],
) -> None:
    s, served, token, _ = setup
    s.write(prefix="v4")

    async def v4_live() -> bool:
        return await get(f"{served.url}/v4/x", token) == 200

    await eventually(v4_live, within=5)
    assert "config reloaded (file changed)" in served.log_text()


async def test_sigterm_drains_in_flight_flushes_usage_and_exits_zero(
    setup: tuple[Setup, Served, str, str],
    upstream: tuple[Upstream, asyncio.Event, asyncio.Event],
) -> None:
    s, served, token, token_id = setup
    _, entered, release = upstream
    in_flight = asyncio.create_task(get(f"{served.url}/api/slow", token))
    await asyncio.wait_for(entered.wait(), 10)
    served.signal(signal.SIGTERM)

    async def not_accepting() -> bool:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", served.port)
        except OSError:
            return True
        w.close()
        return False

    await eventually(not_accepting, within=5)
    assert not in_flight.done()
    release.set()
    assert await asyncio.wait_for(in_flight, 10) == 200
    assert await served.wait_exit(15) == 0

    # usage_flush_interval is an hour: only the shutdown flush can have written this.
    with sqlite3.connect(s.db) as db:
        (last_used,) = db.execute(
            "SELECT last_used_at FROM tokens WHERE id = ?", (token_id,)
        ).fetchone()
    assert last_used is not None


async def test_the_connection_cap_answers_503_under_uvloop(
    tmp_path: Path, upstream: tuple[Upstream, asyncio.Event, asyncio.Event]
) -> None:
    """`gateway serve` runs on uvloop, whose transports are not asyncio.Transport subclasses: the
    refusal past ``limits.max_connections`` must still be a whole 503 answer, not a reset."""
    s = Setup(tmp_path, upstream[0])
    capped = CONFIG.replace("shutdown_grace: 15", "max_connections: 2")
    s.write(prefix="api", raw=capped.replace("{prefix}", "api"))
    served = await Served(s.cfg, s.port).start()
    held = []
    try:
        for _ in range(2):  # two connections mid-request: neither is idle, both count
            r, w = await asyncio.open_connection("127.0.0.1", s.port)
            w.write(b"GET /api/x HTTP/1.1\r\n")
            await w.drain()
            held.append(w)
        r, w = await asyncio.open_connection("127.0.0.1", s.port)
        w.write(request_bytes("GET", "/api/x"))
        data = await asyncio.wait_for(r.read(), 10)
        w.close()
        resp = parse(data, closed=True)
        assert resp.status == 503 and resp.code == "TOO_MANY_CONNECTIONS"
    finally:
        for w in held:
            w.close()
        served.kill()

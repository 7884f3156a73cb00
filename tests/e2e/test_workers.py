"""Several worker processes: `gateway serve --workers 2` as a user runs it, as real processes.

Each worker keeps its own caches; a revocation made by another process (the CLI) must reach every
worker within a second. New connections are spread over the workers by the kernel (SO_REUSEPORT),
so many fresh connections exercise both.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.support.harness import Upstream, eventually
from tests.support.served import cli, free_port

CONFIG = """
listeners: {proxy: "127.0.0.1:{port}"}
store: "sqlite:///{db}"
token_types: [{name: live, prefix: gw_live_}]
upstreams: {api: "{up}"}
cache: {poll_interval: 0.1, ttl: 300}
routes: [{name: items, path: /api/**, scopes: [items:read]}]
"""


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """The recording upstream, plus a route that counts an upload without keeping it."""

    async def upload(request: web.Request) -> web.Response:
        total = 0
        async for chunk in request.content.iter_chunked(1 << 20):
            total += len(chunk)
        return web.json_response({"received": total})

    up = Upstream(extra_routes=[("POST", "/api/upload", upload)])
    await up.start()
    yield up
    await up.stop()


@pytest.fixture
async def served(tmp_path: Path, upstream: Upstream) -> AsyncIterator[tuple[str, Path, list[int]]]:
    port = free_port()
    cfg = tmp_path / "gateway.yaml"
    text = CONFIG.replace("{port}", str(port)).replace("{db}", str(tmp_path / "g.db"))
    cfg.write_text(text.replace("{up}", upstream.url))
    await asyncio.to_thread(cli, cfg, "workspace", "create", "--name", "Acme", "--slug", "acme")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(cfg), "serve", "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "GATEWAY_LOG_LEVEL": "WARNING"},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        async def up() -> bool:
            try:
                async with aiohttp.ClientSession() as s, s.get(f"{url}/api/x") as r:
                    return r.status == 401
            except aiohttp.ClientError:
                return False

        await eventually(up, within=30, interval=0.1)
        yield url, cfg, [proc.pid]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    assert proc.returncode == 0, err


async def statuses(url: str, token: str, n: int) -> list[int]:
    """``n`` requests, each on a fresh connection so the kernel spreads them over the workers."""

    async def one() -> int:
        conn = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=conn) as s,
            s.get(f"{url}/api/items", headers={"Authorization": f"Bearer {token}"}) as r,
        ):
            await r.read()
            return r.status

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def test_cli_revocation_reaches_every_worker_within_a_second(
    served: tuple[str, Path, list[int]],
) -> None:
    url, cfg, _ = served
    created = await asyncio.to_thread(
        cli, cfg, "token", "create", "--workspace", "acme", "--name", "w", "--scope", "items:read"
    )
    token = created["token"]
    # Warm both workers' caches: 40 fresh connections land on both with overwhelming probability.
    assert set(await statuses(url, token, 40)) == {200}
    await asyncio.to_thread(cli, cfg, "token", "revoke", created["id"])

    async def all_refused() -> bool:
        return set(await statuses(url, token, 20)) == {401}

    await eventually(all_refused, within=1.0)


def worker_pids(supervisor: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [
        int(c)
        for c in children
        if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()
        and b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()
    ]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_large_upload_streams_without_buffering(served: tuple[str, Path, list[int]]) -> None:
    url, cfg, (supervisor,) = served
    created = await asyncio.to_thread(
        cli, cfg, "token", "create", "--workspace", "acme", "--name", "u", "--scope", "items:read"
    )
    size = 512 * 1024 * 1024
    chunk = b"z" * (1 << 20)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // len(chunk)):
            yield chunk

    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{url}/api/upload",
            data=body(),
            headers={"Authorization": f"Bearer {created['token']}"},
        ) as r,
    ):
        assert r.status == 200
        assert (await r.json())["received"] == size
    # Every worker's peak resident memory stayed far below the body size.
    peaks = [peak_rss_mib(pid) for pid in worker_pids(supervisor)]
    assert len(peaks) == 2
    assert max(peaks) < 100, peaks

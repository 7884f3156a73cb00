"""Several worker processes: `gateway serve --workers 2` as a user runs it, as real processes.

Each worker keeps its own caches; a revocation made by another process (the CLI) must reach every
worker within a second. New connections are spread over the workers by the kernel (SO_REUSEPORT),
so many fresh connections exercise both.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.support.harness import Upstream, answers, eventually
from tests.support.served import Served, cli, free_port, stop_session

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


def write_config(tmp_path: Path, upstream: Upstream) -> tuple[Path, int]:
    port = free_port()
    cfg = tmp_path / "gateway.yaml"
    text = CONFIG.replace("{port}", str(port)).replace("{db}", str(tmp_path / "g.db"))
    cfg.write_text(text.replace("{up}", upstream.url))
    return cfg, port


def stop(served: Served) -> None:
    """SIGTERM the whole session; the supervisor must exit 0 (every worker drained cleanly)."""
    assert served.proc is not None
    assert stop_session(served.proc) == 0, served.log_text()


@pytest.fixture
async def served(tmp_path: Path, upstream: Upstream) -> AsyncIterator[Served]:
    """``gateway serve --workers 2`` as a user runs it, in its own session (workers included)."""
    cfg, port = write_config(tmp_path, upstream)
    await asyncio.to_thread(cli, cfg, "workspace", "create", "--name", "Acme", "--slug", "acme")
    srv = Served(cfg, port, "--workers", "2")
    try:
        await srv.start(start_new_session=True)

        async def both_listening() -> bool:  # each installs its SIGHUP handler before this line
            return all(f"worker {i} listening" in srv.log_text() for i in range(2))

        await eventually(both_listening, within=30, interval=0.05)
        yield srv
    finally:
        stop(srv)


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


async def test_cli_revocation_reaches_every_worker_within_a_second(served: Served) -> None:
    url, cfg = served.url, served.cfg
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


async def test_large_upload_streams_without_buffering(served: Served) -> None:
    assert served.proc is not None
    url, cfg, supervisor = served.url, served.cfg, served.proc.pid
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


def rewrite_unseen(path: Path, old: str, new: str) -> None:
    """Change the file so that only a signal can reveal it: same inode, size and mtime.

    The config watcher compares exactly those three, so a reload after this can only come from
    SIGHUP.
    """
    assert len(old) == len(new)
    st = path.stat()
    with path.open("r+") as f:  # in place: the inode stays
        text = f.read()
        f.seek(0)
        f.write(text.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
    )


async def test_sighup_to_the_supervisor_reloads_every_worker(served: Served) -> None:
    """`kill -HUP <supervisor>` is how users reload `serve --workers N`: every worker must reload."""
    assert served.proc is not None
    url, cfg, supervisor = served.url, served.cfg, served.proc.pid
    created = await asyncio.to_thread(
        cli, cfg, "token", "create", "--workspace", "acme", "--name", "h", "--scope", "items:read"
    )
    token = created["token"]
    assert set(await statuses(url, token, 40)) == {200}
    rewrite_unseen(cfg, "scopes: [items:read]", "scopes: [items:edit]")
    os.kill(supervisor, signal.SIGHUP)  # the supervisor only, as a user or systemd would

    async def all_forbidden() -> bool:
        return set(await statuses(url, token, 20)) == {403}

    await eventually(all_forbidden, within=5.0)

    # A worker logs its reload just after swapping the config in, so the line may trail the
    # first refused request by a moment on a loaded host.
    async def both_logged() -> bool:
        return served.log_text().count("config reloaded (SIGHUP)") >= 2

    await eventually(both_logged, within=5.0)
    log = served.log_text()
    assert log.count("config reloaded (SIGHUP)") == 2, log  # once in each worker
    assert len(worker_pids(supervisor)) == 2


async def test_sighup_while_workers_start_kills_nothing(tmp_path: Path, upstream: Upstream) -> None:
    """A reload signal sent while workers are still importing must not end any of them.

    SIGHUP's default action is to terminate. Once the supervisor has taken SIGHUP over (visible
    in /proc as caught or ignored), every SIGHUP from then on must leave all processes running.
    """
    cfg, port = write_config(tmp_path, upstream)
    srv = Served(cfg, port, "--workers", "2")
    proc = srv.spawn(start_new_session=True)
    try:

        def hup_handled() -> bool:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            masks = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            return bool((int(masks["SigIgn"], 16) | int(masks["SigCgt"], 16)) & 1)  # bit 0: HUP

        async def supervisor_ready() -> bool:
            assert proc.poll() is None, srv.log_text()
            return hup_handled()

        await eventually(supervisor_ready, within=30, interval=0.005)
        sent = 0
        for _ in range(3000):  # bounded: until the gateway answers, at most ~15 s of signals
            os.kill(proc.pid, signal.SIGHUP)
            sent += 1
            if await answers(srv.url):
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError(f"the gateway never came up:\n{srv.log_text()}")
        assert proc.poll() is None, srv.log_text()
        assert len(worker_pids(proc.pid)) == 2, srv.log_text()
        assert sent > 1  # signals really landed during start-up
    finally:
        stop(srv)

"""Faults the gateway must survive (issue 9): each one caused for real, none simulated.

Upstreams that reset, a store file held locked by another process, a disk that is full while
``last_used_at`` is flushed (RLIMIT_FSIZE on the gateway process: every file write fails as it
would with ENOSPC-like errors), and SIGKILL while tokens are being created through the admin API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import GatewayFactory
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.rawhttp import read_until_closed, request_bytes
from tests.support.served import Served, cli, free_port


async def _reset_mid_body(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Length": str(1 << 20)})
    await resp.prepare(request)
    await resp.write(b"a" * 100_000)
    assert request.transport is not None
    request.transport.abort()  # RST in the middle of a promised 1 MiB
    return resp


async def _reset_before_headers(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.abort()
    return web.Response()


@pytest.fixture
async def faulty(make_gateway: GatewayFactory) -> AsyncIterator[tuple[RunningGateway, str]]:
    up = Upstream(
        extra_routes=[
            ("GET", "/api/items/reset-mid", _reset_mid_body),
            ("GET", "/api/items/reset-early", _reset_before_headers),
        ]
    )
    await up.start()
    g = await make_gateway(CORE, up=up.url, sandbox=up.url, timeout=5, trusted="10.0.0.1/32")
    await g.services.create_workspace("Acme", "acme")
    _, token = await g.services.create_token(workspace="acme", name="t", scopes=["items:read"])
    yield g, token
    await up.stop()


async def test_upstream_reset_mid_response_cuts_the_client_cleanly(
    faulty: tuple[RunningGateway, str],
) -> None:
    g, token = faulty
    reader, writer = await asyncio.open_connection("127.0.0.1", g.proxy_port)
    writer.write(
        request_bytes("GET", "/api/items/reset-mid", [("Authorization", f"Bearer {token}")])
    )
    data, closed = await read_until_closed(reader, 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    # Not a hang, and not a falsely complete body: the connection is cut short of 1 MiB.
    assert closed
    assert 0 < len(body) < 1 << 20


async def test_upstream_reset_before_headers_is_502(faulty: tuple[RunningGateway, str]) -> None:
    g, token = faulty
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{g.url}/api/items/reset-early", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        body = await r.json()
    assert r.status == 502 and body["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    # and the gateway still serves the next request
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{g.url}/api/items/x", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        assert r.status == 200


async def test_store_locked_by_another_process(
    make_gateway: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    g = await make_gateway(
        CORE, up=upstream.url, sandbox=upstream.url, timeout=2, trusted="10.0.0.1/32"
    )
    await g.services.create_workspace("Acme", "acme")
    rec, token = await g.services.create_token(workspace="acme", name="t", scopes=["items:read"])
    _admin_rec, admin = await g.services.create_token(
        workspace="acme", name="a", scopes=["admin:all"]
    )
    # Another process takes the write lock and holds it.
    locker = sqlite3.connect(tmp_path / "gateway.db", isolation_level=None, timeout=0)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        async with aiohttp.ClientSession() as s:
            # Reads still work (WAL): a token never seen before authenticates.
            async with s.get(
                f"{g.url}/api/items", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                assert r.status == 200
            # Writes fail closed with a clear 503 once the busy timeout passes, never a hang.
            async with s.post(
                f"{g.admin_url}/admin/workspaces/acme/tokens",
                headers={"Authorization": f"Bearer {admin}"},
                json={"name": "n", "scopes": ["items:read"]},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as r:
                body = await r.json()
            assert r.status == 503 and body["error"]["code"] == "STORE_UNAVAILABLE"
            # The usage flush cannot write under the lock; nothing is written yet ...
            got = await g.services.store.get_token(rec.id)
            assert got is not None and got.last_used_at is None
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    async def flushed() -> bool:
        got = await g.services.store.get_token(rec.id)
        return got is not None and got.last_used_at is not None

    # ... and what it could not write was kept and lands once the lock is gone.
    await eventually(flushed, within=8)


# -- processes -------------------------------------------------------------------------------------

SERVED = """
listeners: {proxy: "127.0.0.1:{port}", admin: "127.0.0.1:{admin}"}
store: "sqlite:///{db}"
token_types: [{name: live, prefix: gw_live_}]
upstreams: {api: "{up}"}
scopes: {known: [items:read, workspace:admin, admin:all]}
operator_workspace: ops
cache: {poll_interval: 0.1, usage_flush_interval: 0.2}
routes: [{name: items, path: /api/**, scopes: [items:read]}]
"""


def _config(tmp: Path, up: Upstream) -> tuple[Path, int, int]:
    port, admin = free_port(), free_port()
    cfg = tmp / "gateway.yaml"
    text = SERVED.replace("{port}", str(port)).replace("{admin}", str(admin))
    cfg.write_text(text.replace("{db}", str(tmp / "g.db")).replace("{up}", up.url))
    return cfg, port, admin


async def _status(url: str, token: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url, headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        await r.read()
        return r.status


async def test_disk_full_while_flushing_usage_keeps_serving_and_catches_up(
    tmp_path: Path, upstream: Upstream
) -> None:
    cfg, port, _ = _config(tmp_path, upstream)
    await asyncio.to_thread(cli, cfg, "workspace", "create", "--name", "Acme", "--slug", "acme")
    made = await asyncio.to_thread(
        cli, cfg, "token", "create", "--workspace", "acme", "--name", "t", "--scope", "items:read"
    )
    served = await Served(cfg, port).start()
    try:
        assert served.proc is not None
        pid = served.proc.pid
        # From now on no file of the gateway may grow: every write fails (EFBIG), as on a full
        # disk. (Its log goes to a pipe, which the limit does not touch.)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
        assert await _status(f"{served.url}/api/x", made["token"]) == 200

        async def flush_failed() -> bool:
            return "could not write last_used_at" in served.log_text()

        await eventually(flush_failed, within=5)
        # Still serving, cached and uncached tokens alike, while the store cannot be written.
        for _ in range(5):
            assert await _status(f"{served.url}/api/x", made["token"]) == 200
        other = await asyncio.to_thread(
            cli,
            cfg,
            "token",
            "create",
            "--workspace",
            "acme",
            "--name",
            "o",
            "--scope",
            "items:read",
        )
        assert await _status(f"{served.url}/api/x", other["token"]) == 200
        with sqlite3.connect(tmp_path / "g.db") as db:
            (last,) = db.execute(
                "SELECT last_used_at FROM tokens WHERE id = ?", (made["id"],)
            ).fetchone()
        assert last is None
        assert served.proc.poll() is None
        resource.prlimit(
            pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        )

        def written() -> bool:
            with sqlite3.connect(tmp_path / "g.db") as db:
                (v,) = db.execute(
                    "SELECT last_used_at FROM tokens WHERE id = ?", (made["id"],)
                ).fetchone()
            return v is not None

        async def caught_up() -> bool:
            return await asyncio.to_thread(written)

        await eventually(caught_up, within=5)
        with sqlite3.connect(tmp_path / "g.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        served.kill()


async def test_sigkill_during_token_creation_loses_nothing_it_acknowledged(
    tmp_path: Path, upstream: Upstream
) -> None:
    cfg, port, admin_port = _config(tmp_path, upstream)
    for slug in ("ops", "acme"):
        await asyncio.to_thread(cli, cfg, "workspace", "create", "--name", slug, "--slug", slug)
    op = await asyncio.to_thread(
        cli, cfg, "token", "create", "--workspace", "ops", "--name", "op", "--scope", "admin:all"
    )
    served = await Served(cfg, port).start()
    await served.wait_listening(port=admin_port)
    acknowledged: list[str] = []
    killed = asyncio.Event()

    async def create_until_killed(s: aiohttp.ClientSession) -> None:
        for i in range(10_000):  # bounded; the kill below ends it long before
            try:
                async with s.post(
                    f"http://127.0.0.1:{admin_port}/admin/workspaces/acme/tokens",
                    headers={"Authorization": f"Bearer {op['token']}"},
                    json={"name": f"k{i}", "scopes": ["items:read"]},
                ) as r:
                    assert r.status == 201, await r.text()
                    acknowledged.append((await r.json())["token"])
            except aiohttp.ClientError:
                if killed.is_set():
                    return
                raise  # before the kill, a failure is the test's finding

    try:
        async with aiohttp.ClientSession() as s:
            creators = [asyncio.create_task(create_until_killed(s)) for _ in range(4)]

            async def some_made() -> bool:
                for c in creators:
                    if c.done():
                        c.result()  # surfaces a failure before the kill
                return len(acknowledged) >= 40

            await eventually(some_made, within=60)
            killed.set()
            served.signal(signal.SIGKILL)
            await asyncio.wait_for(asyncio.gather(*creators), 20)
        assert await served.wait_exit(10) == -signal.SIGKILL
    finally:
        served.kill()

    with sqlite3.connect(tmp_path / "g.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # No half-written token: every token row has its secret, every secret its token.
        orphans = db.execute(
            "SELECT count(*) FROM tokens t WHERE NOT EXISTS "
            "(SELECT 1 FROM token_secrets s WHERE s.token_id = t.id)"
        ).fetchone()[0]
        assert orphans == 0
        # Issue 23: a token and its audit event commit together, so neither outlives the other.
        unaudited, events_without_token = db.execute(
            "SELECT (SELECT count(*) FROM tokens t WHERE t.name LIKE 'k%' AND NOT EXISTS "
            "  (SELECT 1 FROM audit_log a WHERE a.token_id = t.id AND a.action = 'token.create')),"
            " (SELECT count(*) FROM audit_log a WHERE NOT EXISTS "
            "  (SELECT 1 FROM tokens t WHERE t.id = a.token_id))"
        ).fetchone()
        assert (unaudited, events_without_token) == (0, 0)
    restarted = await Served(cfg, port).start()
    try:
        statuses = await asyncio.gather(
            *(_status(f"{restarted.url}/api/x", t) for t in acknowledged)
        )
        assert set(statuses) == {200}, f"{statuses.count(401)} acknowledged tokens lost"
    finally:
        restarted.kill()
    assert len(acknowledged) >= 40


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs of our own (needs CAP_SYS_ADMIN: root in this sandbox and its CI)."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "none", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        # A capability of the sandbox, not a missing service: nothing CI could install.
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); read-only store untested")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_store_on_a_read_only_file_system_refuses_to_start_with_one_clear_line(
    tmpfs: Path, tmp_path: Path, upstream: Upstream
) -> None:
    cfg, _, _ = _config(tmp_path, upstream)
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "g.db"), str(tmpfs / "g.db")))
    await asyncio.to_thread(cli, cfg, "workspace", "create", "--name", "Acme", "--slug", "acme")
    # The kernel refuses to remount a file system read-only while a writer holds a file open, so
    # the fault that can really happen is a store that is read-only when the gateway starts.
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gateway", "--config", str(cfg), "serve"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "read-only" in done.stderr and str(tmpfs / "g.db") in done.stderr
    assert "Traceback" not in done.stderr


async def test_an_upstream_trickling_its_response_head_times_out(
    make_gateway: GatewayFactory,
) -> None:
    """Each byte arrives well within sock_read, but the head never ends: 504 after the timeout."""
    stop = asyncio.Event()
    handlers: list[asyncio.Task[None]] = []

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200
            for i in range(len(head)):  # bounded: 200+ bytes at 50 ms is ~11 s at most
                if stop.is_set():
                    break
                writer.write(head[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass  # the gateway gave up and closed: what this test wants
        finally:
            writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        g = await make_gateway(CORE, up=url, sandbox=url, timeout=1, trusted="10.0.0.1/32")
        await g.services.create_workspace("Acme", "acme")
        _, token = await g.services.create_token(workspace="acme", name="t", scopes=["items:read"])
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{g.url}/api/items", headers={"Authorization": f"Bearer {token}"}) as r,
        ):
            body = await r.json()
        assert r.status == 504 and body["error"]["code"] == "UPSTREAM_TIMEOUT"
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        server.close()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)


async def test_a_full_disk_is_logged_once_as_such_and_writes_get_503(
    tmpfs: Path,
    make_gateway: GatewayFactory,
    upstream: Upstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 23: a real full file system under the SQLite store (a tmpfs filled to the last
    byte): writes get 503, reads keep serving, and the log says the disk is full, once."""
    caplog.set_level(logging.WARNING, logger="gateway.store")
    g = await make_gateway(
        CORE,
        store=f"sqlite:///{tmpfs}/g.db",
        up=upstream.url,
        sandbox=upstream.url,
        timeout=2,
        trusted="10.0.0.1/32",
    )
    await g.services.create_workspace("Acme", "acme")
    _, token = await g.services.create_token(workspace="acme", name="t", scopes=["items:read"])
    _, admin = await g.services.create_token(workspace="acme", name="a", scopes=["admin:all"])
    filler = tmpfs / "filler"
    with filler.open("wb") as f, contextlib.suppress(OSError):  # ENOSPC: the disk is full
        for _ in range(64):  # bounded: 64 MiB, far more than the 8 MiB file system
            f.write(b"\0" * (1 << 20))
            f.flush()
    auth = {"Authorization": f"Bearer {admin}"}
    create = f"{g.admin_url}/admin/workspaces/acme/tokens"
    async with aiohttp.ClientSession() as s:
        for i in range(3):
            async with s.post(create, headers=auth, json={"name": f"n{i}"}) as r:
                body = await r.json()
            assert r.status == 503 and body["error"]["code"] == "STORE_UNAVAILABLE"
        assert await _status(f"{g.url}/api/items/1", token) == 200  # reads still served
        full = [r.getMessage() for r in caplog.records if "the disk is full" in r.getMessage()]
        assert len(full) == 1, full
        assert "database or disk is full" in full[0]
        filler.unlink()
        async with s.post(create, headers=auth, json={"name": "after"}) as r:
            assert r.status == 201, await r.text()
    assert any("can write again" in r.getMessage() for r in caplog.records)

"""The access log of `gateway serve` as an operator reads it: buffered, yet prompt and complete.

`serve` writes access lines in batches (one write per batch, not per request); a quiet gateway's
lines must still show up within a second, and every line must be on disk after SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.e2e.test_workers import CONFIG
from tests.support.harness import Upstream, eventually
from tests.support.served import cli, free_port


def access_lines(path: Path) -> list[dict[str, object]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if "request_id" in entry:
                out.append(entry)
    return out


async def test_access_lines_appear_promptly_and_all_survive_shutdown(
    tmp_path: Path, upstream: Upstream
) -> None:
    port = free_port()
    cfg = tmp_path / "gateway.yaml"
    text = CONFIG.replace("{port}", str(port)).replace("{db}", str(tmp_path / "g.db"))
    cfg.write_text(text.replace("{up}", upstream.url))
    await asyncio.to_thread(cli, cfg, "workspace", "create", "--name", "Acme", "--slug", "acme")
    created = await asyncio.to_thread(
        cli, cfg, "token", "create", "--workspace", "acme", "--name", "l", "--scope", "items:read"
    )
    log = tmp_path / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(cfg), "serve"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "GATEWAY_LOG_LEVEL": "INFO"},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {created['token']}"}
    try:
        async with aiohttp.ClientSession() as s:

            async def up() -> bool:
                try:
                    async with s.get(f"{url}/api/x", headers=headers) as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(up, within=30, interval=0.1)
            async with s.get(f"{url}/api/one", headers={**headers, "X-Request-Id": "one-1"}) as r:
                assert r.status == 200

            async def logged() -> bool:
                return any(e["request_id"] == "one-1" for e in access_lines(log))

            # A single request on a quiet gateway reaches the log without more traffic.
            await eventually(logged, within=1.5)
            for i in range(50):
                async with s.get(f"{url}/api/n", headers={**headers, "X-Request-Id": f"n-{i}"}):
                    pass
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    ids = {e["request_id"] for e in access_lines(log)}
    # Every request of the burst is on disk once the gateway has exited.
    assert {f"n-{i}" for i in range(50)} <= ids
    assert created["token"] not in log.read_text()

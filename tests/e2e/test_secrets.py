"""No plaintext token at rest, in logs or in answers (issue 9).

Tokens are minted every way the product mints them (CLI, admin API, rotation), used through the
running gateway (valid, mistyped, unknown), then every byte of the database, its WAL and shared
memory files, and the gateway's whole log is scanned for each token and for its secret part.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import aiohttp

from gateway.core import tokens
from tests.support.harness import Upstream, eventually
from tests.support.served import Served, cli, free_port

CONFIG = """
listeners: {proxy: "127.0.0.1:{port}", admin: "127.0.0.1:{admin}"}
store: "sqlite:///{db}"
token_types: [{name: live, prefix: gw_live_}]
upstreams: {api: "{up}"}
scopes: {known: [items:read, workspace:admin, admin:all]}
operator_workspace: ops
cache: {poll_interval: 0.1, usage_flush_interval: 0.2}
routes: [{name: items, path: /api/**, scopes: [items:read]}]
"""


def _needles(token: str) -> list[bytes]:
    """The token, and its secret part alone (in case something stored it without the prefix)."""
    body = token[len("gw_live_") :]
    return [token.encode(), body.encode(), body[:24].encode()]


def _scan(paths: list[Path], needles: dict[str, list[bytes]]) -> list[str]:
    found = []
    for p in paths:
        if not p.exists():
            continue
        data = p.read_bytes()
        for name, ns in needles.items():
            if any(n in data for n in ns):
                found.append(f"{name} in {p.name}")
    return found


async def test_no_plaintext_token_in_the_store_files_or_the_logs(
    tmp_path: Path, upstream: Upstream
) -> None:
    port, admin = free_port(), free_port()
    cfg = tmp_path / "gateway.yaml"
    db = tmp_path / "g.db"
    text = CONFIG.replace("{port}", str(port)).replace("{admin}", str(admin))
    cfg.write_text(text.replace("{db}", str(db)).replace("{up}", upstream.url))
    for slug in ("ops", "acme"):
        await asyncio.to_thread(cli, cfg, "workspace", "create", "--name", slug, "--slug", slug)
    made: dict[str, str] = {}
    op = await asyncio.to_thread(
        cli, cfg, "token", "create", "--workspace", "ops", "--name", "op", "--scope", "admin:all"
    )
    made["cli-operator"] = op["token"]
    c = await asyncio.to_thread(
        cli, cfg, "token", "create", "--workspace", "acme", "--name", "c", "--scope", "items:read"
    )
    made["cli"] = c["token"]
    served = await Served(cfg, port).start()
    await served.wait_listening(port=admin)  # the admin listener opens after the proxy
    try:
        async with aiohttp.ClientSession() as s:
            auth = {"Authorization": f"Bearer {op['token']}"}
            base = f"http://127.0.0.1:{admin}/admin/workspaces/acme/tokens"
            async with s.post(
                base, headers=auth, json={"name": "api", "scopes": ["items:read"]}
            ) as r:
                assert r.status == 201
                api = await r.json()
            made["api"] = api["token"]
            async with s.post(
                f"http://127.0.0.1:{admin}/admin/tokens/{api['id']}/rotate", headers=auth, json={}
            ) as r:
                assert r.status in (200, 201), await r.text()
                made["rotated"] = (await r.json())["token"]
            mistyped = made["cli"][:-1] + ("A" if made["cli"][-1] != "A" else "B")
            made["mistyped"] = mistyped
            made["unknown"] = tokens.mint("gw_live_")
            for name, t in made.items():
                async with s.get(
                    f"{served.url}/api/x", headers={"Authorization": f"Bearer {t}"}
                ) as r:
                    body = await r.read()
                    expected = 401 if name in {"mistyped", "unknown"} else 200
                    assert r.status == expected, (name, r.status)
                    if r.status != 200:
                        assert t.encode() not in body

        needles = {name: _needles(t) for name, t in made.items()}
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]

        def last_used() -> object:
            with sqlite3.connect(db) as conn:
                return conn.execute(
                    "SELECT last_used_at FROM tokens WHERE id = ?", (c["id"],)
                ).fetchone()[0]

        async def usage_written() -> bool:
            return await asyncio.to_thread(last_used) is not None

        await eventually(usage_written, within=5)
        # While running, with the WAL still holding recent writes:
        assert _scan(files, needles) == []
        served.signal(signal.SIGTERM)
        assert await served.wait_exit(15) == 0
        # After shutdown (checkpointed), and the whole log of the run:
        assert _scan(files, needles) == []
        log = served.log_text().encode()
        assert log, "the gateway logged nothing at all: the scan would prove nothing"
        leaks = [n for n, ns in needles.items() if any(x in log for x in ns)]
        assert leaks == []
        # What the log does carry is the visible prefix, so operators can still tell tokens apart.
        assert made["cli"][: tokens.VISIBLE_PREFIX_LENGTH].encode() in log
    finally:
        served.kill()

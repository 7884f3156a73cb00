"""Issue 8: `gateway migrate-store --from sqlite:///… --to postgresql://…` copies everything, and
tokens minted on SQLite keep working, exactly as before, on a gateway running on PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import GatewayFactory
from tests.e2e.core_config import CORE
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.stores import fresh_postgres_schema


def migrate(source: str, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "--json",
            "migrate-store",
            "--from",
            source,
            "--to",
            target,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def status(
    http: aiohttp.ClientSession, gw: RunningGateway, tok: str, method: str = "GET"
) -> int:
    headers = {"Authorization": f"Bearer {tok}", "X-Workspace-Id": "acme"}
    async with http.request(method, f"{gw.url}/api/items/1", headers=headers) as r:
        return r.status


async def test_sqlite_to_postgres_keeps_every_token_working(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    subs = {"up": upstream.url, "sandbox": upstream.url, "timeout": 2, "trusted": "10.0.0.1/32"}
    sqlite_url = f"sqlite:///{tmp_path}/old.db"
    old = await make_gateway(CORE, store=sqlite_url, **subs)
    svc = old.services
    await svc.create_workspace("Acme", "acme", "ws_acme")
    await svc.create_user("ann@example.com")
    await svc.add_member("acme", "ann@example.com", "viewer")
    _, reader = await svc.create_token(workspace="acme", name="r", scopes=["items:read"])
    _, pat = await svc.create_token(
        workspace="acme", name="pat", type="pat", user="ann@example.com"
    )
    gone, revoked = await svc.create_token(workspace="acme", name="x", scopes=["items:read"])
    await svc.revoke_token(gone.id)
    rot, before_rotation = await svc.create_token(
        workspace="acme", name="rot", scopes=["items:read"]
    )
    _, after_rotation = await svc.rotate_token(rot.id, 3600)
    expected = {reader: 200, pat: 200, revoked: 401, before_rotation: 200, after_rotation: 200}
    for tok, code in expected.items():
        assert await status(http, old, tok) == code
    assert await status(http, old, pat, "DELETE") == 403  # a viewer's PAT cannot write

    async with fresh_postgres_schema() as pg_url:
        done = migrate(sqlite_url, pg_url)
        assert done.returncode == 0, done.stderr
        counts = json.loads(done.stdout)
        assert counts["tokens"] == 4 and counts["secrets"] == 5 and counts["memberships"] == 1
        assert counts["audit_events"] == len(await svc.store.list_audit())

        new = await make_gateway(CORE, store=pg_url, **subs)
        assert new.gw.store is not old.gw.store and new.config.store.startswith("postgresql://")
        for tok, code in expected.items():
            assert await status(http, new, tok) == code, tok[:12]
        assert await status(http, new, pat, "DELETE") == 403  # inherited role came along
        rec = await new.services.token(rot.id)
        assert rec.visible_prefix == after_rotation[:16]
        assert [e.action for e in await new.services.store.list_audit()] == [
            e.action for e in await svc.store.list_audit()
        ]
        # and the copy is a working store: a revocation there still wins over the cache
        first = (await new.services.list_tokens("acme"))[0]
        assert first.name == "r"
        await new.services.revoke_token(first.id)

        async def refused() -> bool:
            return await status(http, new, reader) == 401

        await eventually(refused, within=1.0)

        # a second run must not merge into (or duplicate) a store that already has data
        again = migrate(sqlite_url, pg_url)
        assert again.returncode == 1 and "not empty" in again.stderr

    missing = migrate(f"sqlite:///{tmp_path}/typo.db", f"sqlite:///{tmp_path}/new.db")
    assert missing.returncode == 1 and "no SQLite store" in missing.stderr
    assert not (tmp_path / "typo.db").exists()

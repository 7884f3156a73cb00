"""Issue 8: `gateway migrate-store --from sqlite:///… --to postgresql://…` copies everything, and
tokens minted on SQLite keep working, exactly as before, on a gateway running on PostgreSQL — OAuth
apps, grants and refresh tokens included.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

from gateway.features.oauth.pkce import challenge_for
from gateway.features.oauth.service import OAuthService
from tests.conftest import GatewayFactory
from tests.e2e.test_oauth import CONFIG as OAUTH_CONFIG
from tests.e2e.test_oauth import REDIRECT as OAUTH_REDIRECT
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.oauth import HS_SECRET, ISSUER, decide, open_consent, session_jwt
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


async def test_oauth_apps_grants_and_refresh_tokens_survive_sqlite_to_postgres(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    subs = {"up": upstream.url, "secret": HS_SECRET, "issuer": ISSUER}
    sqlite_url = f"sqlite:///{tmp_path}/old.db"
    old = await make_gateway(OAUTH_CONFIG, store=sqlite_url, **subs)
    await old.services.create_workspace("Acme", "acme", "ws_acme")
    ann = (await old.services.create_user("ann@example.com")).id
    await old.services.add_member("acme", ann, "member")
    app, secret = await OAuthService(old.services.store, old.config).create_client(
        "Sync", [OAUTH_REDIRECT], ["items:read", "items:write"]
    )
    assert secret is not None
    # A user approves the app in the browser; the app exchanges the code for a token pair.
    verifier = "v" * 64
    query = {
        "client_id": app.id,
        "redirect_uri": OAUTH_REDIRECT,
        "response_type": "code",
        "scope": "items:read",
        "state": "s",
        "code_challenge": challenge_for(verifier),
        "code_challenge_method": "S256",
    }
    consent = f"{old.url}/oauth/consent?{urlencode(query)}"
    page = await open_consent(http, consent, session_jwt(ann))
    _, location = await decide(http, consent, page, session_jwt(ann))
    assert location is not None
    code = parse_qs(urlsplit(location).query)["code"][0]
    basic = {"Authorization": "Basic " + base64.b64encode(f"{app.id}:{secret}".encode()).decode()}

    async def token_call(gw: RunningGateway, body: dict[str, str]) -> tuple[int, dict[str, str]]:
        async with http.post(f"{gw.url}/api/oauth/token", data=body, headers=basic) as r:
            return r.status, await r.json()

    status, pair = await token_call(
        old,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": OAUTH_REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert status == 200
    # A spent dashboard sign-in link id must stay spent after the move.
    assert await old.services.store.use_nonce("login:link-1", time.time() + 600)

    async with fresh_postgres_schema() as pg_url:
        done = migrate(sqlite_url, pg_url)
        assert done.returncode == 0, done.stderr
        counts = json.loads(done.stdout)
        assert counts["oauth_apps"] == 1 and counts["oauth_grants"] == 1
        assert counts["oauth_codes"] == 1 and counts["oauth_refresh_tokens"] == 1
        assert counts["used_nonces"] == 1

        new = await make_gateway(OAUTH_CONFIG, store=pg_url, **subs)
        assert new.config.store.startswith("postgresql://")
        auth = {"Authorization": f"Bearer {pair['access_token']}"}
        async with http.get(f"{new.url}/api/items/1", headers=auth) as r:
            assert r.status == 200  # the access token issued on SQLite
        assert upstream.last.header("X-Gateway-User-Id") == ann
        # The refresh token issued on SQLite rotates on PostgreSQL, and the new pair works.
        status, fresh = await token_call(
            new, {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
        )
        assert status == 200, fresh
        auth = {"Authorization": f"Bearer {fresh['access_token']}"}
        async with http.get(f"{new.url}/api/items/1", headers=auth) as r:
            assert r.status == 200
        # The app's secret came along (as its digest), and a used code is still used: presenting
        # it again revokes the grant, as on SQLite.
        status, body = await token_call(
            new,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": OAUTH_REDIRECT,
                "code_verifier": verifier,
            },
        )
        assert status == 400 and body["error"] == "invalid_grant"

        async def family_revoked() -> bool:
            async with http.get(f"{new.url}/api/items/1", headers=auth) as r:
                return r.status == 401

        await eventually(family_revoked, within=1.0)
        assert await new.services.store.use_nonce("login:link-1", time.time() + 600) is False

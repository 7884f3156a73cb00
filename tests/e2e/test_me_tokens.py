"""Issue 4, Spedy's token management endpoints, exactly as 002_c21def0f3b7e9e2f.txt describes them.

Runs the real config/spedy.yaml preset in front of a recording upstream on loopback.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest

from tests.support.calls import call
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.presets import answers, run_preset

HOST = "acme-corp.spedy.app"


@pytest.fixture
async def gw(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[RunningGateway]:
    async with run_preset("spedy", monkeypatch, tmp_path, UPSTREAM_URL=upstream.url) as g:
        svc = g.services
        await svc.create_workspace("Acme Corp", "acme-corp", plan="pro")
        await svc.create_workspace("Globex", "globex", plan="pro")
        for email in ("ann@acme.test", "vic@acme.test"):
            await svc.create_user(email)
        await svc.add_member("acme-corp", "ann@acme.test", "member")
        await svc.add_member("acme-corp", "vic@acme.test", "viewer")
        await svc.add_member("globex", "ann@acme.test", "member")
        yield g


async def pat(gw: RunningGateway, user: str, org: str = "acme-corp") -> str:
    _, token = await gw.services.create_token(
        workspace=org, name="seed", type="spedy_pat", user=user
    )
    return token


def h(token: str | None, host: str = HOST) -> dict[str, str]:
    return {"Host": host, **({"Authorization": f"Bearer {token}"} if token else {})}


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# "POST /api/v1/me/tokens — Create a new Personal Access Token. The full token value is only
# returned once" … "GET /api/v1/me/tokens — Returns all active tokens for the current user" …
# "DELETE /api/v1/me/tokens/{tokenId} — Permanently revoke a token … Returns 204 No Content".
async def test_create_use_list_delete_refuse(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    me = await pat(gw, "ann@acme.test")
    base = f"{gw.url}/api/v1/me/tokens"
    status, created = await call(http, "POST", base, h(me), json={"name": "CI Pipeline"})
    assert status == 201
    assert set(created) >= {"id", "name", "token", "createdAt"}
    assert created["name"] == "CI Pipeline" and created["token"].startswith("spedy_pat_")
    assert created["id"].startswith("tok_")
    assert abs(parse_iso(created["createdAt"]) - time.time()) < 5
    new = created["token"]

    # the new PAT works through the gateway, as its user
    status, _ = await call(http, "GET", f"{gw.url}/api/v1/tickets", h(new))
    assert status == 200
    assert upstream.last.header("X-Gateway-Token-Id") == created["id"]

    # listed, with a lastUsedAt that moved, and never the secret
    status, listed = await call(http, "GET", base, h(me))
    assert status == 200
    entry = next(t for t in listed["tokens"] if t["id"] == created["id"])
    assert set(entry) >= {"id", "name", "lastUsedAt", "createdAt"}
    assert entry["lastUsedAt"] is not None
    assert parse_iso(entry["lastUsedAt"]) >= parse_iso(entry["createdAt"])
    assert new not in str(listed) and new[16:] not in str(listed)
    assert entry["prefix"] == new[:16]

    # GET one: details without the secret
    status, one = await call(http, "GET", f"{base}/{created['id']}", h(me))
    assert status == 200 and one["id"] == created["id"] and "token" not in one

    # DELETE: 204, then refused through the gateway within a second, irreversibly
    status, _ = await call(http, "DELETE", f"{base}/{created['id']}", h(me))
    assert status == 204
    await eventually(answers(http, "GET", f"{gw.url}/api/v1/tickets", h(new), 401), within=1.0)
    status, listed = await call(http, "GET", base, h(me))
    assert created["id"] not in {t["id"] for t in listed["tokens"]}
    assert (await call(http, "DELETE", f"{base}/{created['id']}", h(me)))[0] == 404
    assert (await call(http, "GET", f"{base}/{created['id']}", h(me)))[0] == 404

    # the management endpoints are served by the gateway: none of this reached the upstream
    assert not any(s.path.startswith("/api/v1/me") for s in upstream.seen)


async def test_a_user_never_sees_or_touches_another_users_tokens(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    ann, vic = await pat(gw, "ann@acme.test"), await pat(gw, "vic@acme.test")
    base = f"{gw.url}/api/v1/me/tokens"
    _, vics = await call(http, "POST", base, h(vic), json={"name": "vic's"})
    status, listed = await call(http, "GET", base, h(ann))
    assert vics["id"] not in {t["id"] for t in listed["tokens"]}
    nonexistent = await call(http, "GET", f"{base}/tok_doesnotexist1234", h(ann))
    for method in ("GET", "DELETE"):
        status, body = await call(http, method, f"{base}/{vics['id']}", h(ann))
        assert status == 404  # not 403: ids cannot be probed
        assert body["error"]["code"] == nonexistent[1]["error"]["code"] == "NOT_FOUND"
    # vic's token survived ann's attempt
    assert (await call(http, "GET", f"{gw.url}/api/v1/tickets", h(vics["token"])))[0] == 200


async def test_tokens_are_per_organization(gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    acme, globex = await pat(gw, "ann@acme.test"), await pat(gw, "ann@acme.test", "globex")
    base = "/api/v1/me/tokens"
    _, made = await call(http, "POST", f"{gw.url}{base}", h(acme), json={"name": "acme only"})
    _, listed = await call(http, "GET", f"{gw.url}{base}", h(globex, "globex.spedy.app"))
    assert made["id"] not in {t["id"] for t in listed["tokens"]}


async def test_optional_scopes_never_exceed_the_user_and_expiry(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    vic = await pat(gw, "vic@acme.test")  # a viewer
    base = f"{gw.url}/api/v1/me/tokens"
    status, body = await call(
        http, "POST", base, h(vic), json={"name": "w", "scopes": ["tickets:write"]}
    )
    # 403 FORBIDDEN naming what the caller lacks (issue 17: a new token never exceeds its creator)
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    assert "tickets:write" in body["error"]["message"]
    status, body = await call(
        http,
        "POST",
        base,
        h(vic),
        json={"name": "r", "scopes": ["tickets:read"], "expiresIn": "30d"},
    )
    assert status == 201
    assert body["scopes"] == ["tickets:read"]
    assert abs(parse_iso(body["expiresAt"]) - (time.time() + 30 * 86400)) < 10
    # the narrower token really is narrower than its user
    assert (await call(http, "GET", f"{gw.url}/api/v1/customers", h(body["token"])))[0] == 403


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({}, "name is required"),
        ({"name": "  "}, "name is required"),
        ({"name": 7}, "name is required"),
        ({"name": "x", "scopes": "tickets:read"}, "scopes must be a list"),
        ({"name": "x", "scopes": ["nope:nope"]}, "Unknown scope"),
        ({"name": "x", "expiresIn": "soon"}, "Invalid duration"),
        ({"name": "x", "expiresAt": "2001-01-01T00:00:00Z"}, "in the past"),
        ({"name": "x", "expiresIn": "1d", "expiresAt": "2999-01-01T00:00:00Z"}, "not both"),
        ({"name": "x", "token": "mine"}, "Unknown field: token"),
        ([1, 2], "JSON object"),
    ],
)
async def test_create_validation_errors_are_400(
    gw: RunningGateway, http: aiohttp.ClientSession, payload: object, reason: str
) -> None:
    me = await pat(gw, "ann@acme.test")
    status, body = await call(http, "POST", f"{gw.url}/api/v1/me/tokens", h(me), json=payload)
    assert status == 400
    assert body["error"]["code"] == "INVALID_ARGUMENT"
    assert reason in body["error"]["message"]


async def test_not_json_and_no_credential(gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    me = await pat(gw, "ann@acme.test")
    status, body = await call(http, "POST", f"{gw.url}/api/v1/me/tokens", h(me), data=b"{nope")
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT"
    assert (await call(http, "GET", f"{gw.url}/api/v1/me/tokens", h(None)))[0] == 401
    assert (await call(http, "PUT", f"{gw.url}/api/v1/me/tokens", h(me)))[0] == 405

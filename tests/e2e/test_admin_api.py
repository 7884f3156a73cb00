"""Issue 4: the admin API on the admin listener, rotation with grace, audit log, PAT inheritance."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import aiohttp
import pytest

from tests.conftest import GatewayFactory
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway, Upstream, eventually

ADMIN_CORE = (
    CORE.replace(
        "known: [items:read, items:write, reports:read, admin:all]",
        "known: [items:read, items:write, reports:read, workspace:admin, tokens:read, "
        "tokens:write, admin:all]",
    ).replace(
        "implies: {items:write: [items:read]}",
        "implies: {items:write: [items:read], tokens:write: [tokens:read]}",
    )
    + 'operator_workspace: "ops"\n'
)


@pytest.fixture
async def gw(make_gateway: GatewayFactory, upstream: Upstream) -> RunningGateway:
    g = await make_gateway(
        ADMIN_CORE, up=upstream.url, sandbox=upstream.url, timeout=2, trusted="10.0.0.1/32"
    )
    for name, slug in (("Ops", "ops"), ("Acme", "acme"), ("Other", "other")):
        await g.services.create_workspace(name, slug, f"ws_{slug}")
    return g


# A workspace admin that may manage tokens and members, and mint tokens up to its own scopes.
ADMIN = ["workspace:admin", "tokens:write", "items:write", "reports:read"]


async def token(gw: RunningGateway, ws: str, scopes: list[str], **kw: Any) -> str:
    return (await gw.services.create_token(workspace=ws, name="t", scopes=scopes, **kw))[1]


async def api(
    http: aiohttp.ClientSession,
    gw: RunningGateway,
    method: str,
    path: str,
    tok: str | None,
    body: Any = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    async with http.request(method, gw.admin_url + path, headers=headers, json=body) as r:
        raw = await r.read()
        return r.status, json.loads(raw) if raw else None


async def test_who_may_call_what(gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    operator = await token(gw, "ops", ["admin:all"])
    acme_admin = await token(gw, "acme", ADMIN)
    acme_reader = await token(gw, "acme", ["items:read"])
    assert (await api(http, gw, "GET", "/admin/workspaces/acme", None))[0] == 401
    status, body = await api(http, gw, "GET", "/admin/workspaces/acme", acme_reader)
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    assert (await api(http, gw, "GET", "/admin/workspaces/acme", acme_admin))[0] == 200
    # another workspace is invisible to a workspace admin: 404, not 403
    assert (await api(http, gw, "GET", "/admin/workspaces/other", acme_admin))[0] == 404
    assert (await api(http, gw, "GET", "/admin/workspaces/other/tokens", acme_admin))[0] == 404
    # global operations are for operator tokens only
    assert (await api(http, gw, "GET", "/admin/workspaces", acme_admin))[0] == 403
    assert (await api(http, gw, "POST", "/admin/workspaces", acme_admin, {"name": "X"}))[0] == 403
    status, made = await api(
        http, gw, "POST", "/admin/workspaces", operator, {"name": "New Co", "slug": "new-co"}
    )
    assert status == 201 and made["slug"] == "new-co"
    status, listed = await api(http, gw, "GET", "/admin/workspaces", operator)
    assert {"ops", "acme", "other", "new-co"} <= {w["slug"] for w in listed["workspaces"]}
    assert (await api(http, gw, "GET", "/admin/workspaces/other", operator))[0] == 200
    # admin:all outside the operator workspace is an admin of its own workspace only
    acme_all = await token(gw, "acme", ["admin:all"])
    assert (await api(http, gw, "GET", "/admin/workspaces/acme/tokens", acme_all))[0] == 200
    assert (await api(http, gw, "GET", "/admin/workspaces/other/tokens", acme_all))[0] == 404


async def test_token_lifecycle_through_the_admin_api(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    admin = await token(gw, "acme", ADMIN)
    status, made = await api(
        http,
        gw,
        "POST",
        "/admin/workspaces/acme/tokens",
        admin,
        {"name": "ci", "scopes": ["items:read"], "expires_in": "30d"},
    )
    assert status == 201 and made["token"].startswith("gw_live_") and made["status"] == "active"
    status, listed = await api(http, gw, "GET", "/admin/workspaces/acme/tokens", admin)
    assert made["id"] in {t["id"] for t in listed["tokens"]}
    assert made["token"] not in json.dumps(listed)
    status, shown = await api(http, gw, "GET", f"/admin/tokens/{made['id']}", admin)
    assert status == 200 and "token" not in shown and shown["prefix"] == made["token"][:16]
    status, revoked = await api(http, gw, "POST", f"/admin/tokens/{made['id']}/revoke", admin)
    assert status == 200 and revoked["status"] == "revoked"
    # validation errors are 400 with stable codes
    status, body = await api(
        http, gw, "POST", "/admin/workspaces/acme/tokens", admin, {"scopes": ["items:read"]}
    )
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT"
    status, body = await api(
        http, gw, "POST", "/admin/workspaces/acme/tokens", admin, {"name": "x", "scopes": ["nope"]}
    )
    assert status == 400
    status, body = await api(
        http, gw, "POST", "/admin/workspaces/acme/tokens", admin, {"name": "x", "bogus": 1}
    )
    assert status == 400 and "bogus" in body["error"]["message"]


async def test_rotation_keeps_the_old_secret_for_the_grace_period_only(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    admin = await token(gw, "acme", ADMIN)
    rec, old = await gw.services.create_token(workspace="acme", name="svc", scopes=["items:read"])
    url = f"{gw.url}/api/items"

    async def status_of(tok: str) -> int:
        async with http.get(url, headers={"Authorization": f"Bearer {tok}"}) as r:
            return r.status

    assert await status_of(old) == 200
    status, rotated = await api(
        http, gw, "POST", f"/admin/tokens/{rec.id}/rotate", admin, {"grace": "2s"}
    )
    assert status == 200 and rotated["id"] == rec.id
    new = rotated["token"]
    assert new != old and rotated["prefix"] == new[:16]
    # both work during the grace period: same token record, same identity upstream
    assert await status_of(new) == 200
    assert await status_of(old) == 200

    async def old_refused() -> bool:
        return await status_of(old) == 401

    await eventually(old_refused, within=3.5)
    assert await status_of(new) == 200
    # a revoked token cannot be rotated back to life
    await gw.services.revoke_token(rec.id)
    status, body = await api(http, gw, "POST", f"/admin/tokens/{rec.id}/rotate", admin, {})
    assert status == 400 and "active" in body["error"]["message"]


async def test_membership_changes_through_the_api_bound_pats_within_a_second(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    admin = await token(gw, "acme", ADMIN)
    status, user = await api(http, gw, "POST", "/admin/users", admin, {"email": "bo@example.com"})
    assert status == 201
    assert (
        await api(
            http,
            gw,
            "PUT",
            f"/admin/workspaces/acme/members/{user['id']}",
            admin,
            {"role": "member"},
        )
    )[0] == 200
    _, pat = await gw.services.create_token(
        workspace="acme", name="pat", type="pat", user=user["id"]
    )
    url = f"{gw.url}/api/items/1"

    async def delete_status() -> int:
        async with http.delete(url, headers={"Authorization": f"Bearer {pat}"}) as r:
            return r.status

    assert await delete_status() == 200
    status, body = await api(
        http, gw, "PUT", f"/admin/workspaces/acme/members/{user['id']}", admin, {"role": "viewer"}
    )
    assert status == 200 and body["role"] == "viewer"

    async def refused() -> bool:
        return await delete_status() == 403

    await eventually(refused, within=1.0)
    status, members = await api(http, gw, "GET", "/admin/workspaces/acme/members", admin)
    assert {"user_id": user["id"], "role": "viewer"}.items() <= next(
        m for m in members["members"] if m["user_id"] == user["id"]
    ).items()
    assert (
        await api(
            http, gw, "PUT", f"/admin/workspaces/acme/members/{user['id']}", admin, {"role": "god"}
        )
    )[0] == 400
    assert (await api(http, gw, "DELETE", f"/admin/workspaces/acme/members/{user['id']}", admin))[
        0
    ] == 204
    assert (await api(http, gw, "DELETE", f"/admin/workspaces/acme/members/{user['id']}", admin))[
        0
    ] == 404


async def test_audit_log_records_create_rotate_revoke(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    admin = await token(gw, "acme", ADMIN)
    _, made = await api(
        http,
        gw,
        "POST",
        "/admin/workspaces/acme/tokens",
        admin,
        {"name": "a", "scopes": ["items:read"]},
    )
    await api(http, gw, "POST", f"/admin/tokens/{made['id']}/rotate", admin, {"grace": "0s"})
    await api(http, gw, "POST", f"/admin/tokens/{made['id']}/revoke", admin)
    status, log = await api(http, gw, "GET", "/admin/workspaces/acme/audit", admin)
    assert status == 200
    mine = [e for e in log["events"] if e["token_id"] == made["id"]]
    assert [e["action"] for e in mine] == ["token.revoke", "token.rotate", "token.create"]
    admin_id = (await gw.services.list_tokens("acme"))[0].id
    for e in mine:
        assert e["actor"] == admin_id
        assert e["address"] == "127.0.0.1"
        assert (
            e["token_prefix"]
            and e["token_prefix"].startswith("gw_live_")
            and len(e["token_prefix"]) == 16
        )
        assert e["at"].endswith("Z")
    # the same log through the CLI, from another process
    out = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "gateway",
            "--config",
            str(gw.config_path),
            "--json",
            "audit",
            "list",
            "--workspace",
            "acme",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    cli_events = [e for e in json.loads(out.stdout) if e["token_id"] == made["id"]]
    assert [e["action"] for e in cli_events] == ["token.revoke", "token.rotate", "token.create"]
    # no secret anywhere in the log
    assert made["token"] not in out.stdout and made["token"] not in json.dumps(log)


# Issue 17 §6: what schemathesis found, each pinned (tests/e2e/test_openapi.py now also runs the
# negative_data_rejection and unsupported_method checks over the whole document).
async def test_handlers_agree_with_the_openapi_document(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    operator = await token(gw, "ops", ["admin:all"])
    auth = {"Authorization": f"Bearer {operator}"}
    async with http.request("TRACE", f"{gw.admin_url}/admin/workspaces", headers=auth) as r:
        assert r.status == 405
        assert {m.strip() for m in r.headers["Allow"].split(",")} >= {"GET", "POST"}
    body = {"email": "dup@example.com"}
    assert (await api(http, gw, "POST", "/admin/users", operator, body))[0] == 201
    status, err = await api(http, gw, "POST", "/admin/users", operator, body)
    assert (status, err["error"]["code"]) == (409, "CONFLICT")
    for limit in ("35184372088833", "0", "-1", "1e3", "\u0661\u0660"):  # last: Arabic-Indic digits
        path = f"/admin/workspaces/acme/audit?limit={limit}"
        assert (await api(http, gw, "GET", path, operator))[0] == 400, limit
    assert (await api(http, gw, "GET", "/admin/workspaces/acme/audit?limit=1000", operator))[
        0
    ] == 200
    # a name the schema allows is accepted; an empty slug the schema refuses is refused
    status, made = await api(
        http, gw, "POST", "/admin/workspaces", operator, {"name": "\u00d7\u00f8"}
    )
    assert status == 201 and made["slug"].startswith("ws-")
    status, _ = await api(
        http, gw, "POST", "/admin/workspaces", operator, {"name": "Named", "slug": ""}
    )
    assert status == 400
    status, _ = await api(
        http, gw, "POST", "/admin/workspaces", operator, {"name": "Named", "plan": None}
    )
    assert status == 400


async def test_a_workspace_admin_cannot_hand_out_a_role_above_its_own(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    admin = await token(gw, "acme", ADMIN)
    await gw.services.create_user("eve@example.com")
    path = "/admin/workspaces/acme/members/eve@example.com"
    status, body = await api(http, gw, "PUT", path, admin, {"role": "owner"})
    assert status == 403 and "admin:all" in body["error"]["message"]
    assert (await api(http, gw, "PUT", path, admin, {"role": "member"}))[0] == 200


async def test_a_workspace_admin_cannot_remove_or_demote_a_member_more_powerful_than_itself(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    """Removing a member revokes their tokens and a new role replaces their power: both touch
    credentials, so both are bounded like minting one (issue 17 review)."""
    admin = await token(gw, "acme", ADMIN)
    ann = await gw.services.create_user("ann@example.com")
    await gw.services.add_member("acme", ann.id, "owner")
    anns_pat = await token(gw, "acme", ["admin:all"], type="pat", user=ann.id)
    path = f"/admin/workspaces/acme/members/{ann.id}"
    status, body = await api(http, gw, "DELETE", path, admin)
    assert status == 403 and "admin:all" in body["error"]["message"], body
    status, body = await api(http, gw, "PUT", path, admin, {"role": "viewer"})
    assert status == 403 and "admin:all" in body["error"]["message"], body
    # Nothing changed: ann is still an owner and her PAT still works.
    m = await gw.services.store.get_membership(ann.id, "ws_acme")
    assert m is not None and m.role == "owner"
    async with http.get(
        gw.url + "/admin/x",
        headers={"Authorization": f"Bearer {anns_pat}", "X-Workspace-Id": "acme"},
    ) as r:
        assert r.status == 200
    # A user-owned API key holding more than the admin is touched by removing its user, too
    # (bob made it as an owner, then was made a viewer: API keys keep their scopes).
    bob = await gw.services.create_user("bob@example.com")
    await gw.services.add_member("acme", bob.id, "owner")
    await token(gw, "acme", ["admin:all"], user=bob.id)
    await gw.services.add_member("acme", bob.id, "viewer")
    status, body = await api(http, gw, "DELETE", f"/admin/workspaces/acme/members/{bob.id}", admin)
    assert status == 403 and "admin:all" in body["error"]["message"], body
    # Members within the admin's power: demoted and removed as before.
    eve = await gw.services.create_user("eve@example.com")
    await gw.services.add_member("acme", eve.id, "member")
    eve_path = f"/admin/workspaces/acme/members/{eve.id}"
    assert (await api(http, gw, "PUT", eve_path, admin, {"role": "viewer"}))[0] == 200
    assert (await api(http, gw, "DELETE", eve_path, admin))[0] == 204


async def test_a_workspace_admin_cannot_mint_a_token_speaking_for_another_workspaces_user(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    """The upstream trusts ``X-Gateway-User-Id``: a token that can do anything names only a user
    who is a member of its workspace (issue 17 review: an acme admin minted a key that the
    upstream saw as a user of another workspace)."""
    admin = await token(gw, "acme", ADMIN)
    vic = await gw.services.create_user("vic@other.example")
    await gw.services.add_member("other", vic.id, "owner")
    status, body = await api(
        http,
        gw,
        "POST",
        "/admin/workspaces/acme/tokens",
        admin,
        {"name": "as vic", "scopes": ["items:read"], "user": vic.id},
    )
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT", body
    assert not [t for t in await gw.services.store.list_tokens(user_id=vic.id)]
    # A member of acme may own one, as before (once the membership reached the auth cache).
    await gw.services.add_member("acme", vic.id, "member")
    made: dict[str, Any] = {}

    async def minted() -> bool:
        status, body = await api(
            http,
            gw,
            "POST",
            "/admin/workspaces/acme/tokens",
            admin,
            {"name": "as vic", "scopes": ["items:read"], "user": vic.id},
        )
        made.update(body if status == 201 else {})
        return status == 201

    await eventually(minted, within=1.0)
    async with http.get(
        gw.url + "/api/items/1", headers={"Authorization": f"Bearer {made['token']}"}
    ) as r:
        assert r.status == 200
    assert upstream.last.header("X-Gateway-User-Id") == vic.id


async def test_an_expiring_key_cannot_mint_or_rotate_its_way_to_a_permanent_one(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    """Lifetime bounds like scopes (issue 17 review): a key that expires in an hour got a key
    that never expires by creating one, or by rotating an existing one (rotation hands over the
    new secret)."""
    admin = await token(gw, "acme", ADMIN, expires_at=time.time() + 3600)
    target, _ = await gw.services.create_token(workspace="acme", name="old", scopes=["items:read"])
    path = "/admin/workspaces/acme/tokens"
    status, body = await api(http, gw, "POST", path, admin, {"name": "x", "expires_in": "30d"})
    assert status == 403 and body["error"]["code"] == "FORBIDDEN", body
    status, made = await api(http, gw, "POST", path, admin, {"name": "x", "scopes": ["items:read"]})
    assert status == 201 and made["expires_at"] is not None, made
    status, body = await api(http, gw, "POST", f"/admin/tokens/{target.id}/rotate", admin)
    assert status == 403 and body["error"]["code"] == "FORBIDDEN", body
    # A token dying before the caller may be rotated.
    status, _ = await api(http, gw, "POST", f"/admin/tokens/{made['id']}/rotate", admin)
    assert status == 200


async def test_a_test_environment_key_cannot_mint_or_touch_live_keys(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    """The environment is power too (issue 17 review): a `gw_test_` key, which only reaches the
    sandbox, minted a `gw_live_` key that reaches production, and rotated or revoked live keys."""
    sandbox_admin = await token(gw, "acme", ADMIN, type="test")
    live, _ = await gw.services.create_token(workspace="acme", name="prod", scopes=["items:read"])
    path = "/admin/workspaces/acme/tokens"
    status, body = await api(
        http,
        gw,
        "POST",
        path,
        sandbox_admin,
        {"name": "x", "type": "live", "scopes": ["items:read"]},
    )
    assert status == 403 and body["error"]["code"] == "FORBIDDEN", body
    for op in ("rotate", "revoke"):
        status, body = await api(http, gw, "POST", f"/admin/tokens/{live.id}/{op}", sandbox_admin)
        assert status == 403 and body["error"]["code"] == "FORBIDDEN", (op, body)
    status, listed = await api(http, gw, "GET", path, sandbox_admin)
    assert status == 200 and live.id not in {t["id"] for t in listed["tokens"]}
    assert (await gw.services.token(live.id)).revoked_at is None
    # Its own environment, as before.
    status, made = await api(
        http,
        gw,
        "POST",
        path,
        sandbox_admin,
        {"name": "x", "type": "test", "scopes": ["items:read"]},
    )
    assert status == 201 and made["environment"] == "test"

"""Issue 17 §1, the matrix: every credential kind x every management operation x a request
narrower than, equal to or wider than the caller. No cell may end with a credential that can do
more than the one that asked.

Test ids read ``test_matrix[<kind>-<operation>-<size>]``:

* kinds: ``api_key`` (Velocity ``vel_``, admin API), ``pat`` / ``oauth`` / ``session_jwt``
  (Spedy, ``/api/v1/me/tokens`` and ``/api/oauth/grants``), ``dashboard`` (Spedy's dashboard),
  ``workspace_key`` (a ``workspace_key`` type on the admin API), ``velt_auth_token`` (Velt's
  ``/v2/workspace/apikey/create``), ``velt_api_key`` (the public browser key, on every door);
* operations: ``create``, ``rotate``, ``list``, ``revoke``, ``app-create`` / ``app-delete`` (OAuth app),
  ``grant-list``, ``grant-revoke``, where the door offers them;
* sizes: what is asked for (create, app-create) or the target's power (the rest) compared with
  the caller's. ``narrower`` and ``equal`` succeed; ``wider`` is 403 ``FORBIDDEN`` naming the
  missing scopes and changes nothing. A user's session holds their whole role, which bounds every
  credential of theirs, so for ``session_jwt`` and ``dashboard`` a "wider" *target* is a PAT
  stored with ``admin:all`` (as PATs were minted before issue 17) whose power is still the role:
  touching it is allowed, and the cell checks exactly that.

Every power is computed by the gateway's own :class:`gateway.pipeline.authz.Powers` (the pipeline's
workspace step) on a fresh cache, and every cell asserts ``power(result) ⊆ power(caller)``.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core import tokens
from gateway.features.dashboard.signin import COOKIE, mint_signin_cookie
from gateway.features.oauth.service import OAuthService
from gateway.store.base import TokenRecord
from tests.conftest import GatewayFactory
from tests.e2e.test_management_doors import REDIRECT, approved_grant, oauth_token
from tests.support.calls import call
from tests.support.harness import RunningGateway, Upstream
from tests.support.oauth import JWKSServer, jwk_of, session_jwt
from tests.support.presets import run_preset

SPEDY_HOST = "acme-corp.spedy.app"
DASH_SECRET = "matrix-dashboard-secret-0123456789"

WORKSPACE_KEY_CONFIG = """
store: "{store}"
token_types:
  - {name: wk, prefix: gw_wk_, kind: workspace_key}
workspace: {source: header, header: X-Workspace-Id, match: any, required: false}
upstreams: {api: {url: "{up}"}}
scopes:
  known: [items:read, items:write, tokens:read, tokens:write, admin:all]
  implies: {items:write: [items:read], tokens:write: [tokens:read]}
routes:
  - {name: items, path: /api/items/**, scopes: [items:read], upstream: api}
"""

# (kind, operations) the doors offer; sizes below.
CELLS: dict[str, tuple[str, ...]] = {
    "api_key": (
        "create",
        "rotate",
        "list",
        "revoke",
        "app-create",
        "app-delete",
        "grant-list",
        "grant-revoke",
    ),
    "pat": ("create", "list", "revoke", "grant-list", "grant-revoke"),
    "oauth": ("create", "list", "revoke", "grant-list", "grant-revoke"),
    "session_jwt": ("create", "list", "revoke", "grant-list", "grant-revoke"),
    "dashboard": ("create", "list", "revoke"),
    "workspace_key": ("create", "rotate", "list", "revoke"),
    "velt_auth_token": ("create",),
    "velt_api_key": ("create", "rotate", "list", "revoke"),
}
SIZES = ("narrower", "equal", "wider")


def _cells() -> list[Any]:
    out = []
    for kind, ops in CELLS.items():
        for op in ops:
            for size in SIZES:
                if kind == "velt_auth_token" and size == "wider":
                    continue  # the endpoint takes no scopes: only the key (narrower) or a twin
                out.append(pytest.param(kind, op, size, id=f"{kind}-{op}-{size}"))
    return out


@dataclass
class World:
    """One preset running, a caller credential of ``kind``, and the door's operations."""

    g: RunningGateway
    http: aiohttp.ClientSession
    caller_power: frozenset[str]
    levels: dict[str, list[str]]
    # door operations; each returns (status, body)
    create: Callable[[list[str] | None], Awaitable[tuple[int, Any]]]
    seed: Callable[[list[str]], Awaitable[tuple[str, str]]]  # a target token: (id, plaintext)
    list_ids: Callable[[], Awaitable[tuple[int, set[str]]]]
    revoke: Callable[[str], Awaitable[tuple[int, Any]]]
    rotate: Callable[[str], Awaitable[tuple[int, Any]]] | None = None
    app_create: Callable[[list[str]], Awaitable[tuple[int, Any]]] | None = None
    app_delete: Callable[[list[str]], Awaitable[tuple[int, Any, str]]] | None = None
    seed_grant: Callable[[list[str]], Awaitable[str]] | None = None
    grant_list: Callable[[], Awaitable[tuple[int, set[str]]]] | None = None
    grant_revoke: Callable[[str], Awaitable[tuple[int, Any]]] | None = None
    always_refused: bool = False  # the public browser key: every door refuses it
    extra: dict[str, Any] = field(default_factory=dict)

    async def power(self, plaintext: str) -> frozenset[str]:
        found = await self.g.services.store.find_token(self.g.services.hasher(plaintext))
        assert found is not None
        return await self.g.services.powers.of_token(found[0])

    async def active(self, token_id: str) -> bool:
        t = await self.g.services.store.get_token(token_id)
        return t is not None and t.revoked_at is None

    async def grant_power(self, grant_id: str) -> frozenset[str]:
        svc = OAuthService(self.g.services.store, self.g.config)
        grant = await svc.oauth.get_grant(grant_id)
        assert grant is not None
        ws = await self.g.services.workspace(grant.workspace_id)
        return await self.g.services.powers.of_grant(grant.scopes, grant.user_id, ws)


async def _json(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    return await call(http, method, url, **kw)


# -- Spedy: PAT, OAuth token, session JWT, dashboard ---------------------------------------------


async def _spedy(
    kind: str,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    jwks: JWKSServer,
) -> AsyncIterator[World]:
    signing = ec.generate_private_key(ec.SECP256R1())
    jwks.keys = [jwk_of(signing.public_key(), "m1", "ES256")]
    auth_url = jwks.url.removesuffix("/.well-known/jwks.json")
    async with run_preset(
        "spedy",
        monkeypatch,
        tmp_path,
        UPSTREAM_URL=upstream.url,
        SPEDY_AUTH_URL=auth_url,
        GATEWAY_DASHBOARD_SECRET=DASH_SECRET,
    ) as g:
        svc = g.services
        ws = await svc.create_workspace("Acme Corp", "acme-corp", plan="pro")
        ann = await svc.create_user("ann@acme.test")
        await svc.add_member("acme-corp", ann.id, "member")
        role = sorted(g.config.roles["member"])
        if kind in ("pat", "oauth"):
            narrow_caller = ["tickets:write", "tokens:write"]
            levels = {
                "narrower": ["tickets:read"],
                "equal": narrow_caller,
                "wider": [*narrow_caller, "customers:write"],
            }
        else:  # the session holds the member role
            levels = {
                "narrower": ["tickets:read"],
                "equal": role,
                "wider": [*role, "settings:write"],
            }
        headers: dict[str, str] = {"Host": SPEDY_HOST}
        cookies: dict[str, str] = {}
        if kind == "pat":
            _, cred = await svc.create_token(
                workspace="acme-corp",
                name="caller",
                type="spedy_pat",
                user=ann.id,
                scopes=levels["equal"],
            )
            headers["Authorization"] = f"Bearer {cred}"
        elif kind == "oauth":
            cred = await oauth_token(g, ann.email, "acme-corp", levels["equal"])
            headers["Authorization"] = f"Bearer {cred}"
        elif kind == "session_jwt":
            cred = session_jwt(ann.id, key=signing, alg="ES256", kid="m1", iss=auth_url)
            headers["Authorization"] = f"Bearer {cred}"
        if kind in ("pat", "oauth"):
            caller_power = await svc.powers.of_token(
                (await svc.store.find_token(svc.hasher(cred)))[0]  # type: ignore[index]
            )
        else:
            caller_power = (await svc.powers.of_user(ann.id, ws)).scopes
        base = f"{g.url}/api/v1/me/tokens"

        async def seed(scopes: list[str]) -> tuple[str, str]:
            if kind in ("session_jwt", "dashboard") and scopes == levels["wider"]:
                # Nothing can mint it any more, but stores hold such PATs from before issue 17
                # (a PAT made with no scopes got admin:all): its power is still the member role.
                plain = tokens.mint("spedy_pat_")
                rec = TokenRecord(
                    id=tokens.new_id("tok_", 16),
                    name="legacy",
                    kind="pat",
                    type_prefix="spedy_pat_",
                    environment="live",
                    visible_prefix=plain[: tokens.VISIBLE_PREFIX_LENGTH],
                    scopes=frozenset({"admin:all"}),
                    workspace_id=ws.id,
                    user_id=ann.id,
                    created_at=time.time(),
                )
                await svc.store.create_token(rec, svc.hasher(plain))
                return rec.id, plain
            rec, plain = await svc.create_token(
                workspace="acme-corp", name="target", type="spedy_pat", user=ann.id, scopes=scopes
            )
            return rec.id, plain

        async def seed_grant(scopes: list[str]) -> str:
            return (await approved_grant(g, ann.id, ws.id, scopes))[3].id

        async def grant_list() -> tuple[int, set[str]]:
            status, body = await call(http, "GET", f"{g.url}/api/oauth/grants", headers)
            return status, {x["id"] for x in body["grants"]} if status == 200 else set()

        async def grant_revoke(grant_id: str) -> tuple[int, Any]:
            return await call(http, "DELETE", f"{g.url}/api/oauth/grants/{grant_id}", headers)

        if kind == "dashboard":
            path = g.config.dashboard.path  # type: ignore[union-attr]
            cookie = mint_signin_cookie(g.config.dashboard, ann)  # type: ignore[arg-type]
            cookies = {COOKIE: cookie}
            dash_headers = {"Host": SPEDY_HOST, "Accept": "application/json"}
            async with http.get(g.url + path, headers=dash_headers, cookies=cookies) as r:
                page = await r.text()
            m = re.search(r'name="csrf-token" content="([^"]+)"', page)
            assert m, page[:500]
            csrf = m.group(1)
            post_headers = {**dash_headers, "X-CSRF-Token": csrf}

            async def create(scopes: list[str] | None) -> tuple[int, Any]:
                form = aiohttp.FormData()
                form.add_field("name", "made")
                form.add_field("type", "spedy_pat")
                for s in scopes or []:
                    form.add_field("scope", s)
                return await call(
                    http, "POST", f"{g.url}{path}/tokens", post_headers, data=form, cookies=cookies
                )

            async def list_ids() -> tuple[int, set[str]]:
                async with http.get(g.url + path, headers=dash_headers, cookies=cookies) as r:
                    text = await r.text()
                    return r.status, set(re.findall(r'data-token-id="([^"]+)"', text))

            async def revoke(token_id: str) -> tuple[int, Any]:
                form = aiohttp.FormData({"confirm": "yes"})
                return await call(
                    http,
                    "POST",
                    f"{g.url}{path}/tokens/{token_id}/revoke",
                    post_headers,
                    data=form,
                    cookies=cookies,
                )

            yield World(g, http, caller_power, levels, create, seed, list_ids, revoke)
            return

        async def create(scopes: list[str] | None) -> tuple[int, Any]:
            body: dict[str, Any] = {"name": "made"}
            if scopes is not None:
                body["scopes"] = scopes
            status, out = await call(http, "POST", base, headers, json=body)
            if status == 201:
                out["secret"] = out["token"]
            return status, out

        async def list_ids() -> tuple[int, set[str]]:
            status, body = await call(http, "GET", base, headers)
            return status, {t["id"] for t in body["tokens"]} if status == 200 else set()

        async def revoke(token_id: str) -> tuple[int, Any]:
            return await call(http, "DELETE", f"{base}/{token_id}", headers)

        yield World(
            g,
            http,
            caller_power,
            levels,
            create,
            seed,
            list_ids,
            revoke,
            seed_grant=seed_grant,
            grant_list=grant_list,
            grant_revoke=grant_revoke,
        )


# -- the admin API: Velocity API keys (with OAuth apps and grants), workspace keys -----------------


def _admin_world(
    g: RunningGateway,
    http: aiohttp.ClientSession,
    auth: dict[str, str],
    ws_key: str,
    type_name: str,
    caller_power: frozenset[str],
    levels: dict[str, list[str]],
    member_id: str | None = None,
) -> World:
    svc = g.services

    async def create(scopes: list[str] | None) -> tuple[int, Any]:
        body: dict[str, Any] = {"name": "made", "type": type_name}
        if scopes is not None:
            body["scopes"] = scopes
        status, out = await call(
            http, "POST", f"{g.admin_url}/admin/workspaces/{ws_key}/tokens", auth, json=body
        )
        if status == 201:
            out["secret"] = out["token"]
        return status, out

    async def seed(scopes: list[str]) -> tuple[str, str]:
        rec, plain = await svc.create_token(
            workspace=ws_key, name="target", type=type_name, scopes=scopes
        )
        return rec.id, plain

    async def list_ids() -> tuple[int, set[str]]:
        status, body = await call(
            http, "GET", f"{g.admin_url}/admin/workspaces/{ws_key}/tokens", auth
        )
        return status, {t["id"] for t in body["tokens"]} if status == 200 else set()

    async def revoke(token_id: str) -> tuple[int, Any]:
        return await call(http, "POST", f"{g.admin_url}/admin/tokens/{token_id}/revoke", auth)

    async def rotate(token_id: str) -> tuple[int, Any]:
        status, out = await call(
            http,
            "POST",
            f"{g.admin_url}/admin/tokens/{token_id}/rotate",
            auth,
            json={"grace": "0s"},
        )
        if status == 200:
            out["secret"] = out["token"]
        return status, out

    async def app_create(scopes: list[str]) -> tuple[int, Any]:
        body = {"name": "App", "redirect_uris": [REDIRECT], "scopes": scopes}
        return await call(http, "POST", f"{g.admin_url}/admin/oauth-apps", auth, json=body)

    async def app_delete(scopes: list[str]) -> tuple[int, Any, str]:
        ws = await svc.workspace(ws_key)
        osvc = OAuthService(svc.store, g.config)
        app, _ = await osvc.create_client("Theirs", [REDIRECT], scopes, workspace_id=ws.id)
        status, body = await call(http, "DELETE", f"{g.admin_url}/admin/oauth-apps/{app.id}", auth)
        return status, body, app.id

    async def seed_grant(scopes: list[str]) -> str:
        assert member_id is not None
        ws = await svc.workspace(ws_key)
        return (await approved_grant(g, member_id, ws.id, scopes))[3].id

    async def grant_list() -> tuple[int, set[str]]:
        status, body = await call(
            http, "GET", f"{g.admin_url}/admin/workspaces/{ws_key}/oauth-grants", auth
        )
        return status, {x["id"] for x in body["grants"]} if status == 200 else set()

    async def grant_revoke(grant_id: str) -> tuple[int, Any]:
        return await call(http, "DELETE", f"{g.admin_url}/admin/oauth-grants/{grant_id}", auth)

    oauth = g.config.oauth is not None
    return World(
        g,
        http,
        caller_power,
        levels,
        create,
        seed,
        list_ids,
        revoke,
        rotate=rotate,
        app_create=app_create if oauth else None,
        app_delete=app_delete if oauth else None,
        seed_grant=seed_grant if oauth else None,
        grant_list=grant_list if oauth else None,
        grant_revoke=grant_revoke if oauth else None,
    )


async def _velocity(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, http: aiohttp.ClientSession
) -> AsyncIterator[World]:
    async with run_preset("velocity", monkeypatch, tmp_path, UPSTREAM_URL=upstream.url) as g:
        svc = g.services
        await svc.create_workspace("Acme", "acme")
        bob = await svc.create_user("bob@acme.test")
        await svc.add_member("acme", bob.id, "member")
        caller = ["issues:write", "tokens:write", "workspace:admin"]
        rec, cred = await svc.create_token(workspace="acme", name="caller", scopes=caller)
        levels = {
            "narrower": ["issues:read"],
            "equal": caller,
            "wider": [*caller, "projects:write"],
        }
        power = await svc.powers.of_token(rec)
        auth = {"Authorization": f"Bearer {cred}"}
        yield _admin_world(g, http, auth, "acme", "api_key", power, levels, member_id=bob.id)


async def _workspace_key(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession
) -> World:
    g = await make_gateway(WORKSPACE_KEY_CONFIG, up=upstream.url)
    svc = g.services
    await svc.create_workspace("Acme", "acme", "ws_acme")
    caller = ["items:read", "tokens:write"]
    rec, cred = await svc.create_token(workspace="acme", name="caller", scopes=caller)
    levels = {"narrower": ["items:read"], "equal": caller, "wider": [*caller, "items:write"]}
    power = await svc.powers.of_token(rec)
    return _admin_world(g, http, {"Authorization": f"Bearer {cred}"}, "acme", "wk", power, levels)


# -- Velt: the workspace auth token on its key endpoint, and the public browser key ----------------


async def _velt(
    kind: str,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> AsyncIterator[World]:
    async with run_preset("velt", monkeypatch, tmp_path, UPSTREAM_URL=upstream.url) as g:
        svc = g.services
        ws = await svc.create_workspace("Acme", "acme")
        rec, auth_token = await svc.create_token(
            workspace="acme", name="auth", scopes=["tokens:write"]
        )
        if kind == "velt_auth_token":
            cred, power = auth_token, await svc.powers.of_token(rec)
            headers = {"x-velt-workspace-id": ws.id, "x-velt-auth-token": cred}
        else:
            key_rec, cred = await svc.create_token(
                workspace="acme",
                name="browser key",
                type="velt_api_key",
                scopes=[],
                allowed_domains=["app.example.com"],
            )
            power = await svc.powers.of_token(key_rec)
            headers = {
                "x-velt-workspace-id": ws.id,
                "x-velt-api-key": cred,
                "Origin": "https://app.example.com",  # its allowed origin, forged at will
            }
        url = f"{g.url}/v2/workspace/apikey/create"

        async def create(scopes: list[str] | None) -> tuple[int, Any]:
            data: dict[str, Any] = {"ownerEmail": "o@example.com", "allowedDomains": ["a.example"]}
            if scopes is not None:  # "equal": ask for a twin auth token as well
                data["createAuthToken"] = True
            status, out = await call(http, "POST", url, headers, json={"data": data})
            if status == 200:
                made = out["result"]["data"]
                out["secret"] = made.get("authToken") or made["apiKey"]
            return status, out

        admin = {"x-velt-api-key": cred} if kind == "velt_api_key" else {"x-velt-auth-token": cred}
        levels = {"narrower": [], "equal": ["tokens:write"], "wider": ["tokens:write"]}
        w = _admin_world(g, http, admin, ws.id, "velt_auth_token", power, levels)
        w.create = create  # Velt's own key endpoint; list/revoke/rotate on the admin API
        w.always_refused = kind == "velt_api_key"
        yield w


@pytest.fixture
async def world(
    request: pytest.FixtureRequest,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    jwks_server: JWKSServer,
    make_gateway: GatewayFactory,
) -> AsyncIterator[World]:
    kind = request.node.callspec.params["kind"]
    if kind in ("pat", "oauth", "session_jwt", "dashboard"):
        gen = _spedy(kind, upstream, monkeypatch, tmp_path, http, jwks_server)
    elif kind == "api_key":
        gen = _velocity(upstream, monkeypatch, tmp_path, http)
    elif kind == "workspace_key":
        yield await _workspace_key(make_gateway, upstream, http)
        return
    else:
        gen = _velt(kind, upstream, monkeypatch, tmp_path, http)
    async for w in gen:
        yield w


def _refused(status: int, body: Any, lacking: str | None = None) -> None:
    assert status == 403, (status, body)
    error = body["error"]
    assert error.get("code", "FORBIDDEN") in ("FORBIDDEN",) or error.get("status") == (
        "PERMISSION_DENIED"
    ), error
    if lacking is not None:
        assert lacking in error["message"], error


@pytest.mark.parametrize(("kind", "op", "size"), _cells())
async def test_matrix(world: World, kind: str, op: str, size: str) -> None:
    w = world
    scopes = w.levels[size]
    wider = size == "wider" and kind not in ("session_jwt", "dashboard")
    extra = sorted(set(w.g.config.scopes.expand(frozenset(scopes))) - w.caller_power)
    if w.always_refused:
        # A public browser key is refused by every management door, whatever it asks.
        if op == "create":
            status, body = await w.create(None if size == "narrower" else scopes)
        else:
            target, _ = await w.seed(scopes)
            if op == "list":
                status, body = await w.list_ids()
            elif op == "revoke":
                status, body = await w.revoke(target)
            else:
                assert w.rotate is not None, op
                status, body = await w.rotate(target)
            assert await w.active(target)
        assert status == 403, (status, body)
        return

    if op == "create":
        before = len(await w.g.services.store.list_tokens())
        asked: list[str] | None = scopes
        if kind == "velt_auth_token":
            asked = None if size == "narrower" else scopes  # the key alone, or key + auth token
        status, body = await w.create(asked)
        if size == "wider" and extra:
            _refused(status, body, extra[0])
            assert len(await w.g.services.store.list_tokens()) == before  # nothing minted
            return
        assert status in (200, 201), (status, body)
        made = await w.power(body["secret"])
        assert made <= w.caller_power, (made, w.caller_power)
        if size == "equal":
            assert made == w.caller_power or kind == "velt_auth_token"
        return

    if op in ("rotate", "revoke", "list"):
        target, plain = await w.seed(scopes)
        target_power = await w.power(plain)
        if op == "list":
            status, ids = await w.list_ids()
            assert status == 200
            assert (target in ids) == (target_power <= w.caller_power)
            assert (target in ids) == (not wider)
            return
        fn = w.rotate if op == "rotate" else w.revoke
        assert fn is not None
        status, body = await fn(target)
        if wider:
            _refused(status, body, extra[0])
            assert await w.active(target)  # untouched, and its secret unchanged
            assert await w.power(plain) == target_power
            return
        assert status in (200, 204), (status, body)
        assert target_power <= w.caller_power
        if op == "rotate":
            assert await w.power(body["secret"]) <= w.caller_power
        else:
            assert not await w.active(target)
        return

    if op == "app-create":
        assert w.app_create is not None
        status, body = await w.app_create(scopes)
        if wider:
            _refused(status, body, extra[0])
            return
        assert status == 201 and set(body["scopes"]) <= w.caller_power
        return

    if op == "app-delete":
        # Deleting an app ends every grant made to it: bounded by what the app may be granted.
        assert w.app_delete is not None
        status, body, app_id = await w.app_delete(scopes)
        still = await OAuthService(w.g.services.store, w.g.config).oauth.get_client(app_id)
        if wider:
            _refused(status, body, extra[0])
            assert still is not None
            return
        assert status == 204 and still is None
        return

    assert w.seed_grant is not None and w.grant_list is not None and w.grant_revoke is not None
    grant = await w.seed_grant(scopes)
    power = await w.grant_power(grant)
    if kind == "oauth":
        # An OAuth app never manages grants, its own or others': the route takes user
        # credentials only (401), whatever the grant's size.
        status, _ = await (w.grant_list() if op == "grant-list" else w.grant_revoke(grant))
        assert status == 401
        return
    if op == "grant-list":
        status, ids = await w.grant_list()
        assert status == 200
        assert (grant in ids) == (power <= w.caller_power) == (not wider)
        return
    status, body = await w.grant_revoke(grant)
    if wider:
        _refused(status, body)
        assert await w.grant_power(grant) == power
        svc = OAuthService(w.g.services.store, w.g.config)
        g = await svc.oauth.get_grant(grant)
        assert g is not None and g.revoked_at is None
        return
    assert status == 204, (status, body)
    assert power <= w.caller_power


def test_the_matrix_covers_every_kind_the_presets_have() -> None:
    kinds = set(CELLS)
    assert kinds == {
        "api_key",
        "pat",
        "workspace_key",
        "oauth",
        "session_jwt",
        "dashboard",
        "velt_auth_token",
        "velt_api_key",
    }
    assert tokens.mint("x_")  # the format the presets mint (kept honest: real minting)

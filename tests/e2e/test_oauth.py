"""Issue 5: the OAuth 2.0 + PKCE authorization server, driven by a real OAuth client library
(authlib's httpx client) against a running gateway, a recording upstream and a real SQLite store;
the whole flow and code reuse also run on PostgreSQL (``@on_both_stores``).

The user's browser is played by aiohttp (signed in with a session JWT minted with a test key); the
third-party app is authlib. Every refusal the issue lists is shown: code reuse (and the family
revoked), redirect_uri mismatch (never redirected), missing or wrong verifier, `plain`, expired
code, refresh reuse.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from multidict import CIMultiDictProxy

with warnings.catch_warnings():
    # authlib warns on import that it would prefer the httpx2 package; we use httpx on purpose.
    # (authlib.deprecate installs an "always" filter on import, so ours must come after it.)
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore")
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

from gateway.features.oauth.pkce import challenge_for
from gateway.features.oauth.records import CODES, GRANTS, REFRESH_TOKENS
from gateway.features.oauth.service import OAuthService
from gateway.features.oauth.store import ClientRecord
from tests.conftest import GatewayFactory
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.oauth import HS_SECRET, ISSUER, decide, open_consent, session_jwt
from tests.support.stores import fresh_postgres_schema

CONFIG = """
store: "{store}"
token_types:
  - {name: key, prefix: gw_, kind: api_key}
  - {name: oauth, prefix: gwo_, kind: oauth_access}
workspace: {source: header, header: X-Workspace-Id, match: any, required: false}
upstreams: {api: "{up}"}
scopes:
  known: [items:read, items:write, workspace:admin, tokens:read, tokens:write, admin:all]
  implies: {items:write: [items:read], tokens:write: [tokens:read]}
roles:
  owner: [admin:all]
  member: [items:read, items:write, tokens:write]
  viewer: [items:read, tokens:read]
cache: {poll_interval: 0.1}
operator_workspace: ops
sessions:
  algorithms: [HS256]
  secret: "{secret}"
  issuer: "{issuer}"
  cookie: sb-access-token
oauth:
  refresh_reuse_grace: 30s
routes:
  - {name: items-read, path: /api/items/**, methods: [GET], scopes: [items:read]}
  - {name: items-write, path: /api/items/**, methods: [POST], scopes: [items:write]}
"""
REDIRECT = "https://app.example.com/callback"
LOOPBACK = "http://127.0.0.1/cb"


class World:
    def __init__(self, gw: RunningGateway) -> None:
        self.gw = gw
        self.svc = OAuthService(gw.services.store, gw.config)
        self.consent = gw.url + "/oauth/consent"
        self.token_url = gw.url + "/api/oauth/token"
        self.ann = ""
        self.bob = ""
        self.app: ClientRecord
        self.secret = ""

    def session(self, who: str = "ann") -> str:
        return session_jwt(self.ann if who == "ann" else self.bob)

    def client(self, **kw: Any) -> AsyncOAuth2Client:
        kw.setdefault("client_secret", self.secret)
        kw.setdefault("scope", "items:read items:write")
        kw.setdefault("redirect_uri", REDIRECT)
        return AsyncOAuth2Client(
            client_id=self.app.id,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
            **kw,
        )


@pytest.fixture
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """SQLite unless a test asks for both backends with ``@on_both_stores``."""
    if getattr(request, "param", "sqlite") == "postgres":
        async with fresh_postgres_schema() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path}/gateway.db"


# The flows whose storage differs most between backends (issuance, rotation, family revocation)
# also run against a gateway whose store is PostgreSQL.
on_both_stores = pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
async def world(make_gateway: GatewayFactory, upstream: Upstream, store_url: str) -> World:
    gw = await make_gateway(
        CONFIG, store=store_url, up=upstream.url, secret=HS_SECRET, issuer=ISSUER
    )
    assert gw.config.store == store_url
    w = World(gw)
    s = gw.services
    await s.create_workspace("Acme", "acme", "ws_acme")
    await s.create_workspace("Other", "other", "ws_other")
    w.ann = (await s.create_user("ann@example.com")).id
    w.bob = (await s.create_user("bob@example.com")).id
    await s.add_member("acme", w.ann, "member")
    await s.add_member("acme", w.bob, "viewer")
    w.app, secret = await w.svc.create_client(
        "Issue Tracker Sync", [REDIRECT, LOOPBACK], ["items:read", "items:write"]
    )
    assert secret is not None
    w.secret = secret
    return w


async def authorize(
    w: World,
    http: aiohttp.ClientSession,
    client: AsyncOAuth2Client,
    who: str = "ann",
    redirect_uri: str = REDIRECT,
) -> tuple[str, str, str]:
    """Consent in the browser; returns (callback URL, verifier, state)."""
    verifier = generate_token(64)
    url, state = client.create_authorization_url(
        w.consent, code_verifier=verifier, redirect_uri=redirect_uri
    )
    page = await open_consent(http, url, w.session(who))
    assert page.status == 200, page.html
    status, location = await decide(http, url, page, w.session(who))
    assert status == 302 and location is not None
    return location, verifier, state


async def get_code(w: World, http: aiohttp.ClientSession, **params: str) -> tuple[str, str]:
    """Approve a hand-built authorization request; returns (code, verifier)."""
    verifier = params.pop("verifier", generate_token(64))
    query = {
        "client_id": w.app.id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "items:read",
        "state": "s1",
        "code_challenge": challenge_for(verifier),
        "code_challenge_method": "S256",
        **params,
    }
    url = w.consent + "?" + urlencode(query)
    page = await open_consent(http, url, w.session())
    assert page.status == 200, page.html
    status, location = await decide(http, url, page, w.session())
    assert status == 302 and location
    return parse_qs(urlsplit(location).query)["code"][0], verifier


async def token_call(
    http: aiohttp.ClientSession, w: World, body: dict[str, str], *, json_body: bool = False
) -> tuple[int, dict[str, Any], CIMultiDictProxy[str]]:
    basic = base64.b64encode(f"{w.app.id}:{w.secret}".encode()).decode()
    kw: dict[str, Any] = {"json": body} if json_body else {"data": body}
    async with http.post(w.token_url, headers={"Authorization": f"Basic {basic}"}, **kw) as r:
        return r.status, await r.json(), r.headers


async def api_status(http: aiohttp.ClientSession, w: World, token: str, method: str = "GET") -> int:
    async with http.request(
        method, w.gw.url + "/api/items/7", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        await r.read()
        return r.status


def refused(http: aiohttp.ClientSession, w: World, token: str) -> Any:
    async def check() -> bool:
        return await api_status(http, w, token) == 401

    return check


# -- the whole flow, with a real client library ---------------------------------------------------


@on_both_stores
async def test_authlib_completes_consent_code_token_call_refresh_and_revocation(
    world: World, http: aiohttp.ClientSession, upstream: Upstream
) -> None:
    w = world
    async with w.client() as client:
        verifier = generate_token(64)
        url, state = client.create_authorization_url(w.consent, code_verifier=verifier)
        # The consent page names the app and the scopes, sets a CSRF cookie, refuses framing.
        page = await open_consent(http, url, w.session())
        assert page.status == 200
        assert "Issue Tracker Sync" in page.html and "items:write" in page.html
        assert page.csrf_cookie and page.fields["csrf_token"] == page.csrf_cookie
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.workspaces == ["ws_acme"]
        status, location = await decide(http, url, page, w.session())
        assert status == 302 and location and location.startswith(REDIRECT + "?")
        assert parse_qs(urlsplit(location).query)["state"] == [state]

        token = await client.fetch_token(
            w.token_url, authorization_response=location, code_verifier=verifier, state=state
        )
        assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
        assert token["access_token"].startswith("gwo_") and token["refresh_token"]
        assert token["scope"] == "items:read items:write"

        # A proxied call reaches the upstream with the user's identity.
        r = await client.get(w.gw.url + "/api/items/7")
        assert r.status_code == 200
        seen = upstream.last
        assert seen.header("X-Gateway-User-Id") == w.ann
        assert seen.header("X-Gateway-Workspace-Id") == "ws_acme"
        assert seen.header("X-Gateway-Auth-Method") == "oauth"
        assert seen.header("Authorization") is None
        assert (await client.post(w.gw.url + "/api/items/7")).status_code == 200

        # Refresh: a new pair; the old refresh token is spent.
        old = dict(token)
        new = await client.refresh_token(w.token_url, refresh_token=old["refresh_token"])
        assert new["access_token"] != old["access_token"]
        assert new["refresh_token"] != old["refresh_token"]
        assert (await client.get(w.gw.url + "/api/items/7")).status_code == 200

        # Introspection (client-authenticated) sees the new token active.
        basic = (w.app.id, w.secret)
        r = await client.post(
            w.gw.url + "/api/oauth/introspect", data={"token": new["access_token"]}, auth=basic
        )
        info = r.json()
        assert info["active"] is True and info["sub"] == w.ann and info["client_id"] == w.app.id

        # Revocation (RFC 7009) of the access token: refused by the proxy within a second.
        r = await client.revoke_token(w.gw.url + "/api/oauth/revoke", token=new["access_token"])
        assert r.status_code == 200
        await eventually(refused(http, w, new["access_token"]), within=1.0)
        r = await client.post(
            w.gw.url + "/api/oauth/introspect", data={"token": new["access_token"]}, auth=basic
        )
        assert r.json() == {"active": False}

        # Revoking the refresh token ends the whole authorization.
        await client.revoke_token(
            w.gw.url + "/api/oauth/revoke",
            token=new["refresh_token"],
            token_type_hint="refresh_token",
        )
        with pytest.raises(OAuthError) as exc:
            await client.refresh_token(w.token_url, refresh_token=new["refresh_token"])
        assert exc.value.error == "invalid_grant"

    # Everything the store holds (export_all reads every table, OAuth ones included) has digests
    # of the code, the client secret and the tokens, never one of them in plaintext.
    dump = await w.gw.services.store.export_all()
    refresh = dump.records(REFRESH_TOKENS)
    assert (len(dump.records(GRANTS)), len(dump.records(CODES)), len(refresh)) == (1, 1, 2)
    assert all(r.revoked_at is not None for r in refresh)
    stored = repr(dump)
    code = parse_qs(urlsplit(location).query)["code"][0]
    plaintexts = [code, w.secret, old["access_token"], old["refresh_token"]]
    plaintexts += [new["access_token"], new["refresh_token"]]
    for plain in plaintexts:
        assert plain not in stored


async def test_public_client_json_body_and_loopback_redirect_on_any_port(
    world: World, http: aiohttp.ClientSession
) -> None:
    w = world
    app, secret = await w.svc.create_client(
        "CLI tool", ["http://127.0.0.1/callback"], ["items:read"], public=True
    )
    assert secret is None
    verifier = generate_token(50)
    redirect = "http://127.0.0.1:53117/callback"  # RFC 8252: the port is chosen at run time
    query = {
        "client_id": app.id,
        "redirect_uri": redirect,
        "response_type": "code",
        "scope": "items:read",
        "state": "xyz",
        "code_challenge": challenge_for(verifier),
        "code_challenge_method": "S256",
    }
    url = w.consent + "?" + urlencode(query)
    page = await open_consent(http, url, w.session())
    assert page.status == 200
    status, location = await decide(http, url, page, w.session())
    assert status == 302 and location and location.startswith(redirect + "?")
    code = parse_qs(urlsplit(location).query)["code"][0]
    # Velocity's documented JSON body, with only a client_id (public client).
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "client_id": app.id,
        "code_verifier": verifier,
    }
    async with http.post(w.token_url, json=body) as r:
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-store"
        token = await r.json()
    assert token["scope"] == "items:read"
    assert await api_status(http, w, token["access_token"]) == 200
    # The token carries only the granted scope: a write is refused.
    assert await api_status(http, w, token["access_token"], "POST") == 403
    # Velocity's documented refresh body (JSON, client_id only).
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": token["refresh_token"],
        "client_id": app.id,
    }
    async with http.post(w.token_url, json=refresh) as r:
        assert r.status == 200, await r.text()


async def test_scopes_never_exceed_the_users_role(
    world: World, http: aiohttp.ClientSession
) -> None:
    w = world
    async with w.client() as client:
        location, verifier, state = await authorize(w, http, client, who="bob")  # a viewer
        token = await client.fetch_token(
            w.token_url, authorization_response=location, code_verifier=verifier, state=state
        )
        assert token["scope"] == "items:read"
        assert (await client.get(w.gw.url + "/api/items/7")).status_code == 200
        assert (await client.post(w.gw.url + "/api/items/7")).status_code == 403
    # and the user's current role still bounds the token: demoting ann later narrows her grant
    code, verifier = await get_code(w, http, scope="items:read items:write")
    status, tok, _ = await token_call(
        http,
        w,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert status == 200 and tok["scope"] == "items:read items:write"
    assert await api_status(http, w, tok["access_token"], "POST") == 200
    await w.gw.services.add_member("acme", w.ann, "viewer")

    async def write_refused() -> bool:
        return await api_status(http, w, tok["access_token"], "POST") == 403

    await eventually(write_refused, within=1.0)


# -- refusals -----------------------------------------------------------------------------------------


def code_body(code: str, verifier: str | None, redirect_uri: str = REDIRECT) -> dict[str, str]:
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        body["code_verifier"] = verifier
    return body


@on_both_stores
async def test_code_reuse_is_refused_and_revokes_everything_issued_from_it(
    world: World, http: aiohttp.ClientSession
) -> None:
    w = world
    code, verifier = await get_code(w, http)
    status, first, headers = await token_call(http, w, code_body(code, verifier))
    assert status == 200
    assert await api_status(http, w, first["access_token"]) == 200
    status, body, headers = await token_call(http, w, code_body(code, verifier))
    assert status == 400 and body["error"] == "invalid_grant"
    assert headers["Cache-Control"] == "no-store"
    # The tokens issued from the code are dead: the access token within a second, the refresh now.
    await eventually(refused(http, w, first["access_token"]), within=1.0)
    status, body, _ = await token_call(
        http, w, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert status == 400 and body["error"] == "invalid_grant"
    # The reuse is in the workspace's audit log, with the app that presented it.
    events = await w.gw.services.store.list_audit(workspace_id="ws_acme")
    (event,) = [e for e in events if e.action == "oauth.grant.revoke"]
    assert event.detail is not None and event.detail.endswith("code_reuse")
    assert event.actor == w.app.id


async def test_redirect_uri_mismatch_is_never_redirected(
    world: World, http: aiohttp.ClientSession
) -> None:
    w = world
    verifier = generate_token(64)
    base = {
        "client_id": w.app.id,
        "response_type": "code",
        "scope": "items:read",
        "state": "s",
        "code_challenge": challenge_for(verifier),
        "code_challenge_method": "S256",
    }
    for bad in (
        "https://evil.example.com/callback",
        REDIRECT + "/",
        REDIRECT + "?next=x",
        "https://app.example.com/callback#frag",
        "http://app.example.com/callback",
        "https://app.example.com.evil.com/callback",
        "http://localhost/cb",  # loopback, but not the registered host literal
        "http://127.0.0.1/cb/other",
        "",
    ):
        url = w.consent + "?" + urlencode({**base, "redirect_uri": bad})
        for session in (w.session(), None):
            page = await open_consent(http, url, session)
            assert page.status == 400, bad
            assert "Location" not in page.headers
            assert "redirect_uri" in page.html
    # An unknown client is refused the same way, before any redirect.
    url = (
        w.consent + "?" + urlencode({**base, "client_id": "client_nope", "redirect_uri": REDIRECT})
    )
    page = await open_consent(http, url, w.session())
    assert page.status == 400 and "Location" not in page.headers
    # At the token endpoint the redirect_uri must be identical to the authorization request's.
    code, verifier = await get_code(w, http)
    status, body, _ = await token_call(http, w, code_body(code, verifier, LOOPBACK))
    assert status == 400 and body["error"] == "invalid_grant"


async def test_pkce_missing_wrong_or_plain_is_refused(
    world: World, http: aiohttp.ClientSession
) -> None:
    w = world
    verifier = generate_token(64)
    base = {
        "client_id": w.app.id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "items:read",
        "state": "st",
    }
    cases = {
        "no challenge": {},
        "plain": {"code_challenge": verifier, "code_challenge_method": "plain"},
        "no method (means plain)": {"code_challenge": challenge_for(verifier)},
        "malformed challenge": {"code_challenge": "short", "code_challenge_method": "S256"},
    }
    for name, extra in cases.items():
        page = await open_consent(http, w.consent + "?" + urlencode({**base, **extra}), w.session())
        assert page.status == 302, name
        q = parse_qs(urlsplit(page.headers["Location"]).query)
        assert page.headers["Location"].startswith(REDIRECT + "?")
        assert q["error"] == ["invalid_request"] and q["state"] == ["st"], name

    # Missing verifier: invalid_request (the code stays usable for the right verifier).
    code, verifier = await get_code(w, http)
    status, body, _ = await token_call(http, w, code_body(code, None))
    assert status == 400 and body["error"] == "invalid_request"
    # Wrong verifier (well-formed, or too short): invalid_grant, and the code is spent.
    for wrong in (generate_token(64), "x" * 42):
        code, verifier = await get_code(w, http)
        status, body, _ = await token_call(http, w, code_body(code, wrong))
        assert status == 400 and body["error"] == "invalid_grant"
        status, body, _ = await token_call(http, w, code_body(code, verifier))
        assert status == 400 and body["error"] == "invalid_grant"


async def test_expired_code_is_refused(world: World, http: aiohttp.ClientSession) -> None:
    w = world
    code, verifier = await get_code(w, http)
    # Ten minutes pass (the store's clock column, moved instead of sleeping).
    async with w.gw.services.store.transaction() as tx:
        await tx.execute("UPDATE oauth_codes SET expires_at = ?", time.time() - 1)
    status, body, _ = await token_call(http, w, code_body(code, verifier))
    assert status == 400 and body["error"] == "invalid_grant"
    assert "expired" in body["error_description"]


async def test_refresh_reuse_revokes_the_family_after_a_lost_response_grace(
    world: World, http: aiohttp.ClientSession
) -> None:
    w = world
    code, verifier = await get_code(w, http)
    _, t1, _ = await token_call(http, w, code_body(code, verifier))

    def refresh(rt: str) -> dict[str, str]:
        return {"grant_type": "refresh_token", "refresh_token": rt}

    # The response to the first refresh is "lost": the client retries with the same token, within
    # the grace period and before using the new one. That retry succeeds, and the lost pair dies.
    status, lost, _ = await token_call(http, w, refresh(t1["refresh_token"]))
    assert status == 200
    status, t2, _ = await token_call(http, w, refresh(t1["refresh_token"]))
    assert status == 200 and t2["refresh_token"] != lost["refresh_token"]
    await eventually(refused(http, w, lost["access_token"]), within=1.0)
    assert await api_status(http, w, t2["access_token"]) == 200

    # Normal rotation, then the rotated token comes back after its successor was used: reuse.
    status, t3, _ = await token_call(http, w, refresh(t2["refresh_token"]))
    assert status == 200
    status, t4, _ = await token_call(http, w, refresh(t3["refresh_token"]))
    assert status == 200
    status, body, _ = await token_call(http, w, refresh(t2["refresh_token"]))
    assert status == 400 and body["error"] == "invalid_grant"
    # The whole family is revoked: the newest pair too.
    await eventually(refused(http, w, t4["access_token"]), within=1.0)
    status, body, _ = await token_call(http, w, refresh(t4["refresh_token"]))
    assert status == 400 and body["error"] == "invalid_grant"

    # Past the grace period even a never-used successor does not save a replayed token.
    code, verifier = await get_code(w, http)
    _, f1, _ = await token_call(http, w, code_body(code, verifier))
    status, f2, _ = await token_call(http, w, refresh(f1["refresh_token"]))
    assert status == 200
    async with w.gw.services.store.transaction() as tx:
        await tx.execute(
            "UPDATE oauth_refresh_tokens SET rotated_at = rotated_at - 31 "
            "WHERE rotated_at IS NOT NULL"
        )
    status, body, _ = await token_call(http, w, refresh(f1["refresh_token"]))
    assert status == 400 and body["error"] == "invalid_grant"
    await eventually(refused(http, w, f2["access_token"]), within=1.0)


async def test_oauth_errors_render_in_rfc6749s_envelope_through_the_one_error_path(
    world: World, http: aiohttp.ClientSession
) -> None:
    """Issue 20: OAuth refusals are GatewayErrors rendered by gateway.edge.responses: RFC 6749's
    envelope and nothing else, never cached, a Bearer challenge for a client that did not try
    Basic, and body problems named like every other bad body."""
    w = world
    wrong = {"grant_type": "refresh_token", "client_id": w.app.id, "client_secret": "wrong"}
    async with http.post(w.token_url, json=wrong) as r:
        assert r.status == 401
        assert await r.json() == {
            "error": "invalid_client",
            "error_description": "Client authentication failed.",
        }
        assert r.headers["WWW-Authenticate"].startswith("Bearer ")
        assert (r.headers["Cache-Control"], r.headers["Pragma"]) == ("no-store", "no-cache")
    status, body, headers = await token_call(http, w, {"grant_type": 5}, json_body=True)  # type: ignore[dict-item]
    assert (status, body) == (
        400,
        {"error": "invalid_request", "error_description": "grant_type must be a string."},
    )
    assert "WWW-Authenticate" not in headers
    basic = base64.b64encode(f"{w.app.id}:{w.secret}".encode()).decode()
    async with http.post(
        w.gw.url + "/api/oauth/revoke", data={}, headers={"Authorization": f"Basic {basic}"}
    ) as r:
        assert r.status == 400
        assert await r.json() == {
            "error": "invalid_request",
            "error_description": "token is required.",
        }


async def test_token_endpoint_errors_follow_rfc6749(
    world: World, http: aiohttp.ClientSession
) -> None:
    w = world
    status, body, headers = await token_call(http, w, {"grant_type": "password"})
    assert status == 400 and body["error"] == "unsupported_grant_type"
    assert headers["Cache-Control"] == "no-store"
    status, body, _ = await token_call(http, w, {})
    assert status == 400 and body["error"] == "invalid_request"
    # Wrong secret, unknown client, missing secret for a confidential client: 401 invalid_client.
    bad = base64.b64encode(f"{w.app.id}:wrong".encode()).decode()
    async with http.post(
        w.token_url, data={"grant_type": "refresh_token"}, headers={"Authorization": f"Basic {bad}"}
    ) as r:
        assert r.status == 401 and (await r.json())["error"] == "invalid_client"
        assert r.headers["WWW-Authenticate"].startswith("Basic")
        assert r.headers["Cache-Control"] == "no-store"
    for body in (
        {"grant_type": "refresh_token", "client_id": "client_unknown"},
        {"grant_type": "refresh_token", "client_id": w.app.id},
    ):
        async with http.post(w.token_url, json=body) as r:
            assert r.status == 401 and (await r.json())["error"] == "invalid_client"
    # client_secret_post works too; an unknown refresh token is invalid_grant.
    body = {
        "grant_type": "refresh_token",
        "refresh_token": "gwrt_nope",
        "client_id": w.app.id,
        "client_secret": w.secret,
    }
    async with http.post(w.token_url, data=body) as r:
        assert r.status == 400 and (await r.json())["error"] == "invalid_grant"
    # A scope wider than the grant is invalid_scope.
    code, verifier = await get_code(w, http)
    _, tok, _ = await token_call(http, w, code_body(code, verifier))
    status, body, _ = await token_call(
        http,
        w,
        {
            "grant_type": "refresh_token",
            "refresh_token": tok["refresh_token"],
            "scope": "admin:all",
        },
    )
    assert status == 400 and body["error"] == "invalid_scope"
    # An unknown scope at the authorization request goes back to the app as invalid_scope.
    url = (
        w.consent
        + "?"
        + urlencode(
            {
                "client_id": w.app.id,
                "redirect_uri": REDIRECT,
                "response_type": "code",
                "scope": "admin:all",
                "code_challenge": challenge_for(verifier),
                "code_challenge_method": "S256",
            }
        )
    )
    page = await open_consent(http, url, w.session())
    assert page.status == 302 and "error=invalid_scope" in page.headers["Location"]


# -- the consent page ---------------------------------------------------------------------------------


async def test_consent_needs_a_signed_in_user_and_a_csrf_token(
    world: World, http: aiohttp.ClientSession
) -> None:
    w = world
    verifier = generate_token(64)
    query = {
        "client_id": w.app.id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "items:read",
        "state": "abc",
        "code_challenge": challenge_for(verifier),
        "code_challenge_method": "S256",
    }
    url = w.consent + "?" + urlencode(query)
    # Not signed in (or a bad session): 401, no redirect anywhere.
    for session in (None, session_jwt(w.ann, aud="anon"), session_jwt("usr_nobody")):
        page = await open_consent(http, url, session)
        assert page.status == 401 and "Location" not in page.headers
    # The session cookie works as well as the header.
    page = await open_consent(http, url, w.session(), cookie="sb-access-token")
    assert page.status == 200
    # POST without the CSRF cookie, or with a different one: 403 and no redirect.
    page = await open_consent(http, url, w.session())
    for cookie in (None, "forged-value"):
        status, location = await decide(http, url, page, w.session(), csrf_cookie=cookie)
        assert status == 403 and location is None
    # A workspace ann is not a member of is refused, without a redirect.
    status, location = await decide(http, url, page, w.session(), workspace="ws_other")
    assert status == 400 and location is None
    # Deny: back to the app with access_denied and the state.
    status, location = await decide(http, url, page, w.session(), "deny")
    assert status == 302 and location
    q = parse_qs(urlsplit(location).query)
    assert q["error"] == ["access_denied"] and q["state"] == ["abc"] and "code" not in q


async def test_consent_redirects_to_a_configured_login_page(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    text = CONFIG.replace(
        "refresh_reuse_grace: 30s", 'refresh_reuse_grace: 30s\n  login_url: "/login"'
    )
    gw = await make_gateway(text, up=upstream.url, secret=HS_SECRET, issuer=ISSUER)
    app, _ = await OAuthService(gw.services.store, gw.config).create_client(
        "A", [REDIRECT], ["items:read"]
    )
    url = gw.url + "/oauth/consent?" + urlencode({"client_id": app.id, "redirect_uri": REDIRECT})
    async with http.get(url, allow_redirects=False) as r:
        assert r.status == 302
        assert r.headers["Location"].startswith("/login?return_to=%2Foauth%2Fconsent%3F")


# -- around it: metadata, a user's grants, the CLI and the admin API ----------------------------------


async def test_metadata_and_a_users_own_grants(world: World, http: aiohttp.ClientSession) -> None:
    w = world
    async with http.get(w.gw.url + "/.well-known/oauth-authorization-server") as r:
        meta = await r.json()
    assert meta["token_endpoint"] == w.gw.url + "/api/oauth/token"
    assert meta["authorization_endpoint"] == w.gw.url + "/oauth/consent"
    assert meta["code_challenge_methods_supported"] == ["S256"]

    code, verifier = await get_code(w, http)
    _, tok, _ = await token_call(http, w, code_body(code, verifier))
    session = {"Authorization": f"Bearer {w.session()}", "X-Workspace-Id": "acme"}
    async with http.get(w.gw.url + "/api/oauth/grants", headers=session) as r:
        assert r.status == 200
        grants = (await r.json())["grants"]
    assert [g["client_name"] for g in grants] == ["Issue Tracker Sync"]
    # bob sees none of ann's grants, and cannot revoke hers.
    bob = {"Authorization": f"Bearer {w.session('bob')}", "X-Workspace-Id": "acme"}
    async with http.get(w.gw.url + "/api/oauth/grants", headers=bob) as r:
        assert (await r.json())["grants"] == []
    async with http.delete(f"{w.gw.url}/api/oauth/grants/{grants[0]['id']}", headers=bob) as r:
        assert r.status == 404
    # An OAuth token may not manage grants.
    oauth = {"Authorization": f"Bearer {tok['access_token']}"}
    async with http.get(w.gw.url + "/api/oauth/grants", headers=oauth) as r:
        assert r.status == 401
    async with http.delete(f"{w.gw.url}/api/oauth/grants/{grants[0]['id']}", headers=session) as r:
        assert r.status == 204
    await eventually(refused(http, w, tok["access_token"]), within=1.0)


async def test_admin_api_registers_lists_and_deletes_apps_and_revokes_grants(
    world: World, http: aiohttp.ClientSession
) -> None:
    w = world
    s = w.gw.services
    await s.create_workspace("Ops", "ops", "ws_ops")
    _, operator = await s.create_token(workspace="ops", name="op", scopes=["admin:all"])
    _, acme_admin = await s.create_token(
        workspace="acme", name="a", scopes=["workspace:admin", "tokens:write", "items:write"]
    )
    _, reader = await s.create_token(workspace="acme", name="r", scopes=["items:read"])
    admin = w.gw.admin_url

    async def api(method: str, path: str, tok: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {tok}"}
        async with http.request(method, admin + path, headers=headers, json=body) as r:
            raw = await r.read()
            return r.status, (await r.json()) if raw else None

    app_body = {"name": "Acme bot", "redirect_uris": [REDIRECT], "scopes": ["items:read"]}
    assert (await api("POST", "/admin/oauth-apps", reader, app_body))[0] == 403
    status, made = await api("POST", "/admin/oauth-apps", acme_admin, app_body)
    assert status == 201 and made["type"] == "confidential" and made["workspace_id"] == "ws_acme"
    assert made["client_secret"].startswith("gwcs_")
    status, bad = await api(
        "POST",
        "/admin/oauth-apps",
        acme_admin,
        {**app_body, "redirect_uris": ["http://evil.com/cb"]},
    )
    assert status == 400 and bad["error"]["code"] == "INVALID_ARGUMENT"
    # A workspace admin sees its own apps; the operator sees every app, secrets never.
    status, listed = await api("GET", "/admin/oauth-apps", acme_admin)
    assert [a["client_id"] for a in listed["apps"]] == [made["client_id"]]
    status, everything = await api("GET", "/admin/oauth-apps", operator)
    assert {a["client_id"] for a in everything["apps"]} == {made["client_id"], w.app.id}
    assert all("client_secret" not in a for a in everything["apps"])
    assert (await api("GET", f"/admin/oauth-apps/{w.app.id}", acme_admin))[0] == 404

    # Grants in a workspace, and revoking one kills its tokens.
    code, verifier = await get_code(w, http)
    _, tok, _ = await token_call(http, w, code_body(code, verifier))
    status, grants = await api(
        "GET", f"/admin/workspaces/acme/oauth-grants?user={w.ann}", acme_admin
    )
    assert status == 200 and len(grants["grants"]) == 1
    gid = grants["grants"][0]["id"]
    assert (await api("GET", "/admin/workspaces/ops/oauth-grants", acme_admin))[0] == 404
    assert (await api("DELETE", f"/admin/oauth-grants/{gid}", acme_admin))[0] == 204
    await eventually(refused(http, w, tok["access_token"]), within=1.0)
    assert (await api("DELETE", f"/admin/oauth-grants/{gid}", acme_admin))[0] == 404

    # Deleting an app revokes what it holds.
    code, verifier = await get_code(w, http)
    _, tok, _ = await token_call(http, w, code_body(code, verifier))
    assert (await api("DELETE", f"/admin/oauth-apps/{w.app.id}", operator))[0] == 204
    await eventually(refused(http, w, tok["access_token"]), within=1.0)
    status, body, _ = await token_call(
        http, w, {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]}
    )
    assert status == 401 and body["error"] == "invalid_client"


def gateway_cli(w: World, *args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(w.gw.config_path), "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


async def test_cli_manages_apps_and_grants(world: World, http: aiohttp.ClientSession) -> None:
    w = world
    made = gateway_cli(
        w, "oauth-app", "create", "--name", "Desktop", "--public",
        "--redirect-uri", "http://127.0.0.1/cb", "--scope", "items:read",
    )  # fmt: skip
    assert made["type"] == "public" and made["client_secret"] is None
    listed = gateway_cli(w, "oauth-app", "list")
    assert {a["client_id"] for a in listed} == {w.app.id, made["client_id"]}
    assert w.secret not in json.dumps(listed)

    code, verifier = await get_code(w, http)
    _, tok, _ = await token_call(http, w, code_body(code, verifier))
    (grant,) = gateway_cli(w, "oauth-grant", "list", "--user", "ann@example.com")
    assert grant["client_name"] == "Issue Tracker Sync"
    gateway_cli(w, "oauth-grant", "revoke", grant["id"])
    await eventually(refused(http, w, tok["access_token"]), within=1.0)
    assert gateway_cli(w, "oauth-grant", "list", "--user", "ann@example.com") == []
    gateway_cli(w, "oauth-app", "delete", made["client_id"])
    assert [a["client_id"] for a in gateway_cli(w, "oauth-app", "list")] == [w.app.id]


async def test_admin_grant_listing_refuses_a_malformed_user_filter(
    world: World, http: aiohttp.ClientSession
) -> None:
    s = world.gw.services
    await s.create_workspace("Ops", "ops", "ws_ops")
    _, operator = await s.create_token(workspace="ops", name="op", scopes=["admin:all"])
    headers = {"Authorization": f"Bearer {operator}"}
    base = f"{world.gw.admin_url}/admin/workspaces/acme/oauth-grants"
    async with http.get(base + "?user=%00%0A", headers=headers) as r:
        assert r.status == 400  # before issue 17: 200, the schema's pattern not checked
    async with http.get(base + "?user=usr_ok", headers=headers) as r:
        assert r.status == 200

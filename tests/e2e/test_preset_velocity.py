"""config/velocity.yaml, walked beside its document (seeds/000_3ee6a3f9aff04036.txt), statement by
statement, against the real preset file, a recording upstream on loopback and a real SQLite store.

The OAuth 2.0 and session-token sections are walked at the end; their refusals (code reuse, PKCE,
JWT forgeries …) are tested in depth in test_oauth.py and test_sessions.py.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core import tokens
from gateway.core.errors import InvalidArgument
from gateway.features.oauth.pkce import challenge_for
from tests.support.calls import call
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.oauth import JWKSServer, decide, jwk_of, open_consent, session_jwt
from tests.support.presets import cli, run_preset

WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
async def gw(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[RunningGateway]:
    async with run_preset("velocity", monkeypatch, tmp_path, UPSTREAM_URL=upstream.url) as g:
        await g.services.create_workspace("Acme", "acme")
        await g.services.create_workspace("Other", "other")
        yield g


async def key(gw: RunningGateway, *scopes: str, ws: str = "acme") -> str:
    _, plaintext = await gw.services.create_token(workspace=ws, name="k", scopes=list(scopes))
    return plaintext


def auth(token: str, slug: str | None = "acme") -> dict[str, str]:
    h = {"Authorization": f"Bearer {token}"}
    if slug is not None:
        h["X-Workspace-Slug"] = slug
    return h


# "Authorization: Bearer vel_your_api_key_here / X-Workspace-Slug: your-workspace"
async def test_bearer_key_and_workspace_slug_reach_the_api(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    token = await key(gw, "issues:read")
    status, body = await call(http, "GET", f"{gw.url}/api/v1/issues?state=open", auth(token))
    assert status == 200, body
    assert body["path"] == "/api/v1/issues?state=open"
    seen = upstream.last
    acme = await gw.services.workspace("acme")
    assert seen.header("X-Gateway-Workspace-Id") == acme.id
    assert seen.header("X-Gateway-Workspace-Slug") == "acme"
    assert seen.header("Authorization") is None  # the key never reaches the upstream


# "X-Workspace-Slug: your-workspace" - the slug is required and names the key's own workspace.
async def test_workspace_slug_is_required_and_must_be_the_keys(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    token = await key(gw, "issues:read")
    url = f"{gw.url}/api/v1/issues"
    status, body = await call(http, "GET", url, auth(token, slug=None))
    assert (status, body["error"]["code"]) == (400, "WORKSPACE_REQUIRED")
    for other in ("other", "no-such-workspace"):
        status, body = await call(http, "GET", url, auth(token, slug=other))
        assert (status, body["error"]["code"]) == (403, "WORKSPACE_ACCESS_DENIED"), other
    # It is a slug, not an id: the workspace's id is not accepted in its place.
    acme = await gw.services.workspace("acme")
    status, _ = await call(http, "GET", url, auth(token, slug=acme.id))
    assert status in (400, 403)


# "API keys are prefixed with vel_"
async def test_keys_are_prefixed_vel_and_nothing_else_is_a_key(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    token = await key(gw, "issues:read")
    assert token.startswith("vel_")
    url = f"{gw.url}/api/v1/issues"
    for bad in (
        tokens.mint("sk_live_"),
        "vel_your_api_key_here",
        token[:-1] + ("0" if token[-1] != "0" else "1"),
        "x" + token,
    ):
        status, body = await call(http, "GET", url, auth(bad))
        assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED"), bad[:12]
    status, body = await call(http, "GET", url, {"X-Workspace-Slug": "acme"})
    assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")


# "and stored as SHA-256 hashes"
async def test_keys_are_stored_as_sha256_hashes(gw: RunningGateway, tmp_path: Path) -> None:
    record, token = await gw.services.create_token(
        workspace="acme", name="k", scopes=["issues:read"]
    )
    found = await gw.services.store.find_token(hashlib.sha256(token.encode()).hexdigest())
    assert found is not None and found[0].id == record.id
    files = list(tmp_path.glob("velocity.db*"))
    assert files
    for f in files:
        assert token.encode() not in f.read_bytes(), f"plaintext key found in {f.name}"


# "The full key is displayed only once at creation time."
async def test_full_key_is_displayed_only_once(gw: RunningGateway) -> None:
    env = {"GATEWAY_STORE": gw.config.store}
    created = cli(
        "velocity",
        "token",
        "create",
        "--workspace",
        "acme",
        "--name",
        "ci",
        "--scope",
        "issues:read",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    view = json.loads(created.stdout)
    token = view["token"]
    assert token.startswith("vel_") and view["prefix"] == token[:16]
    for args in (("token", "list", "--workspace", "acme"), ("token", "show", view["id"])):
        out = cli("velocity", *args, env=env)
        assert out.returncode == 0, out.stderr
        assert token[16:] not in out.stdout + out.stderr
        assert view["prefix"] in out.stdout


# "Each key has scoped permissions - you can create read-only or read-write keys."
async def test_read_only_keys_are_refused_on_writes_read_write_keys_pass(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    read_only = await key(gw, "issues:read")
    read_write = await key(gw, "issues:write")  # issues:write implies issues:read
    url = f"{gw.url}/api/v1/issues/ISS-1"
    assert (await call(http, "GET", url, auth(read_only)))[0] == 200
    assert (await call(http, "GET", url, auth(read_write)))[0] == 200
    for method in WRITES:
        status, body = await call(http, method, url, auth(read_only))
        assert (status, body["error"]["code"]) == (403, "FORBIDDEN"), method
        assert body["error"]["required_scopes"] == ["issues:write"]
        assert (await call(http, method, url, auth(read_write)))[0] == 200, method


# "Available Scopes": exactly the eight in the table; no other scope can be granted (besides the
# gateway's own tokens:read/tokens:write for managing keys, issue 17).
async def test_the_eight_scopes_and_no_others(gw: RunningGateway) -> None:
    assert gw.config.scopes.known - {"tokens:read", "tokens:write"} == {
        "issues:read",
        "issues:write",
        "projects:read",
        "projects:write",
        "documents:read",
        "documents:write",
        "workspace:read",
        "workspace:admin",
    }
    assert gw.config.scopes.superuser is None
    for bogus in ("admin:all", "issues:delete", "comments:read"):
        with pytest.raises(InvalidArgument):
            await key(gw, bogus)


# Each row of "Available Scopes" guards the endpoints its description names; reads by GET/HEAD,
# writes by POST/PUT/PATCH/DELETE.
@pytest.mark.parametrize(
    ("path", "read_scope", "write_scope"),
    [
        # "Read issues and comments" / "Create, update, delete issues"
        ("/api/v1/issues/ISS-1", "issues:read", "issues:write"),
        ("/api/v1/issues/ISS-1/comments/c1", "issues:read", "issues:write"),
        # "Read projects, cycles, milestones" / "Create and modify projects"
        ("/api/v1/projects/p1", "projects:read", "projects:write"),
        ("/api/v1/cycles/c7", "projects:read", "projects:write"),
        ("/api/v1/milestones/m2", "projects:read", "projects:write"),
        # "Read documents" / "Create and modify documents"
        ("/api/v1/documents/d9", "documents:read", "documents:write"),
        # "Read workspace settings and members" / "Manage workspace settings"
        ("/api/v1/workspace/settings", "workspace:read", "workspace:admin"),
        ("/api/v1/workspace/members/u1", "workspace:read", "workspace:admin"),
    ],
)
async def test_each_scope_guards_the_endpoints_its_row_names(
    gw: RunningGateway,
    http: aiohttp.ClientSession,
    path: str,
    read_scope: str,
    write_scope: str,
) -> None:
    url = gw.url + path
    reader, writer = await key(gw, read_scope), await key(gw, write_scope)
    unrelated = await key(
        gw, *(s for s in gw.config.scopes.known if s.split(":")[0] != read_scope.split(":")[0])
    )
    for method in ("GET", "HEAD"):
        assert (await call(http, method, url, auth(reader)))[0] == 200, method
        assert (await call(http, method, url, auth(unrelated)))[0] == 403, method
    for method in WRITES:
        status, body = await call(http, method, url, auth(reader))
        assert (status, body["error"]["required_scopes"]) == (403, [write_scope]), method
        assert (await call(http, method, url, auth(writer)))[0] == 200, method


# Only the API the document describes is reachable; anything else is denied by default.
async def test_paths_outside_the_documented_api_are_404(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    token = await key(gw, *gw.config.scopes.known)
    for path in ("/api/v1/billing", "/api/v2/issues", "/internal/metrics", "/"):
        status, body = await call(http, "GET", gw.url + path, auth(token))
        assert (status, body["error"]["code"]) == (404, "NOT_FOUND"), path


# -- OAuth 2.0 and session tokens ------------------------------------------------------------------


@pytest.fixture
async def supabase(
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    jwks_server: JWKSServer,
) -> AsyncIterator[tuple[RunningGateway, ec.EllipticCurvePrivateKey, str]]:
    """The preset with SUPABASE_URL pointing at a JWKS server on loopback (ES256 key ``k1``)."""
    signing = ec.generate_private_key(ec.SECP256R1())
    jwks_server.keys = [jwk_of(signing.public_key(), "k1", "ES256")]
    supabase_url = jwks_server.url.removesuffix("/auth/v1/.well-known/jwks.json")
    async with run_preset(
        "velocity", monkeypatch, tmp_path, UPSTREAM_URL=upstream.url, SUPABASE_URL=supabase_url
    ) as g:
        await g.services.create_workspace("Acme", "acme")
        yield g, signing, supabase_url + "/auth/v1"


# "Session Tokens: The web application uses Supabase session tokens (JWTs) passed in the
# Authorization header."
async def test_supabase_session_jwts_act_as_the_user(
    supabase: tuple[RunningGateway, ec.EllipticCurvePrivateKey, str],
    upstream: Upstream,
    http: aiohttp.ClientSession,
) -> None:
    gw, signing, issuer = supabase
    env = {"GATEWAY_STORE": gw.config.store}
    uid = "9b2f3c1e-5d4a-4c7b-8e6f-1a2b3c4d5e6f"  # a Supabase auth user id
    made = cli("velocity", "user", "create", "--email", "ann@acme.test", "--id", uid, env=env)
    assert made.returncode == 0, made.stderr
    await gw.services.add_member("acme", uid, "viewer")
    session = session_jwt(uid, key=signing, alg="ES256", kid="k1", iss=issuer)
    status, _ = await call(http, "GET", f"{gw.url}/api/v1/issues", auth(session))
    assert status == 200
    assert upstream.last.header("X-Gateway-User-Id") == uid
    assert upstream.last.header("X-Gateway-Auth-Method") == "session"
    # the user's role bounds the session: a viewer cannot write
    assert (await call(http, "POST", f"{gw.url}/api/v1/issues", auth(session)))[0] == 403
    # another project's token (wrong iss) and a non-"authenticated" audience are refused
    for bad in (
        session_jwt(uid, key=signing, alg="ES256", kid="k1"),
        session_jwt(uid, key=signing, alg="ES256", kid="k1", iss=issuer, aud="anon"),
    ):
        assert (await call(http, "GET", f"{gw.url}/api/v1/issues", auth(bad)))[0] == 401


# The session JWT is the credential in whichever form it comes: the `sb-access-token` cookie the
# preset accepts it in (sessions.cookie) is stripped like the Authorization header; other cookies
# reach the upstream untouched (issue 17 §3).
async def test_the_session_cookie_never_reaches_the_upstream(
    supabase: tuple[RunningGateway, ec.EllipticCurvePrivateKey, str],
    upstream: Upstream,
    http: aiohttp.ClientSession,
) -> None:
    gw, signing, issuer = supabase
    uid = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
    await gw.services.create_user("cookie@acme.test", id=uid)
    await gw.services.add_member("acme", uid, "viewer")
    session = session_jwt(uid, key=signing, alg="ES256", kid="k1", iss=issuer)
    headers = {**auth(session), "Cookie": f"theme=dark; sb-access-token={session}; lang=en"}
    status, _ = await call(http, "GET", f"{gw.url}/api/v1/issues", headers)
    assert status == 200
    seen = upstream.last
    assert seen.header("Cookie") == "theme=dark; lang=en"
    assert all(session not in v for vs in seen.headers.values() for v in vs), seen.headers
    # Only the credential cookie: a request with nothing else sends no Cookie at all.
    headers = {**auth(session), "Cookie": f"sb-access-token={session}"}
    assert (await call(http, "GET", f"{gw.url}/api/v1/issues", headers))[0] == 200
    assert upstream.last.header("Cookie") is None
    # Separators other than `;` (which aiohttp and Python upstreams also split on) do not
    # smuggle it past the stripping (issue 17 review).
    for cookie in (
        f"theme=dark, sb-access-token={session}",
        f"theme=dark sb-access-token={session}",
    ):
        headers = {**auth(session), "Cookie": cookie}
        assert (await call(http, "GET", f"{gw.url}/api/v1/issues", headers))[0] == 200
        assert all(session not in v for vs in upstream.last.headers.values() for v in vs)


# "Register an OAuth app", "Redirect to authorize", "Exchange code for tokens",
# "Use the access token", "Access tokens expire after 1 hour", "Refreshing Tokens"
async def test_oauth_flow_exactly_as_documented(
    supabase: tuple[RunningGateway, ec.EllipticCurvePrivateKey, str],
    upstream: Upstream,
    http: aiohttp.ClientSession,
) -> None:
    gw, signing, issuer = supabase
    env = {"GATEWAY_STORE": gw.config.store}
    ann = await gw.services.create_user("ann@acme.test")
    await gw.services.add_member("acme", ann.id, "member")
    made = cli(
        "velocity",
        "oauth-app",
        "create",
        "--name",
        "Sync",
        "--redirect-uri",
        "https://yourapp.com/callback",
        "--scope",
        "issues:read",
        "--scope",
        "issues:write",
        env=env,
    )
    assert made.returncode == 0, made.stderr
    app = json.loads(made.stdout)
    client_id, secret = app["client_id"], app["client_secret"]
    listed = cli("velocity", "oauth-app", "list", env=env)
    assert client_id in listed.stdout and secret not in listed.stdout

    verifier = secrets.token_urlsafe(48)
    query = {
        "client_id": client_id,
        "redirect_uri": "https://yourapp.com/callback",
        "response_type": "code",
        "scope": "issues:read issues:write",
        "state": "random_state",
        "code_challenge": challenge_for(verifier),
        "code_challenge_method": "S256",
    }
    url = f"{gw.url}/oauth/consent?{urlencode(query)}"
    session = session_jwt(ann.id, key=signing, alg="ES256", kid="k1", iss=issuer)
    page = await open_consent(http, url, session, cookie="sb-access-token")
    assert page.status == 200 and "Sync" in page.html
    status, location = await decide(http, url, page, session)
    assert status == 302 and location is not None
    assert location.startswith("https://yourapp.com/callback?")
    code = parse_qs(urlsplit(location).query)["code"][0]

    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "https://yourapp.com/callback",
        "client_id": client_id,
        "client_secret": secret,
        "code_verifier": verifier,
    }
    status, token = await call(http, "POST", f"{gw.url}/api/oauth/token", json=body)
    assert status == 200, token
    assert token["expires_in"] == 3600 and token["access_token"].startswith("velo_")
    status, _ = await call(http, "POST", f"{gw.url}/api/v1/issues", auth(token["access_token"]))
    assert status == 200
    assert upstream.last.header("X-Gateway-User-Id") == ann.id
    assert upstream.last.header("X-Gateway-Auth-Method") == "oauth"
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": token["refresh_token"],
        "client_id": client_id,
        "client_secret": secret,
    }
    status, renewed = await call(http, "POST", f"{gw.url}/api/oauth/token", json=refresh)
    assert status == 200 and renewed["access_token"] != token["access_token"]
    assert (await call(http, "GET", f"{gw.url}/api/v1/issues", auth(renewed["access_token"])))[
        0
    ] == 200
    # After the hour the access token is refused (its expiry moved instead of waiting).
    digest = hashlib.sha256(renewed["access_token"].encode()).hexdigest()
    found = await gw.services.store.find_token(digest)  # stored as SHA-256, like keys
    assert found is not None and found[0].kind == "oauth_access"
    await gw.services.store.set_token_expiry(found[0].id, time.time() - 1)

    async def expired() -> bool:
        return (await call(http, "GET", f"{gw.url}/api/v1/issues", auth(renewed["access_token"])))[
            0
        ] == 401

    await eventually(expired, within=1.0)

"""config/velocity.yaml, walked beside its document (seeds/000_3ee6a3f9aff04036.txt), statement by
statement, against the real preset file, a recording upstream on loopback and a real SQLite store.

The OAuth 2.0 and session-token sections of the document are served by issue 5 and tested there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway import tokens
from gateway.errors import InvalidArgument
from tests.e2e.preset_support import call, cli, run_preset
from tests.support.harness import RunningGateway, Upstream

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
    for bad in (tokens.mint("sk_live_"), "vel_your_api_key_here", token[:-1] + "0", "x" + token):
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


# "Available Scopes": exactly the eight in the table; no other scope can be granted.
async def test_the_eight_scopes_and_no_others(gw: RunningGateway) -> None:
    assert gw.config.scopes.known == {
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

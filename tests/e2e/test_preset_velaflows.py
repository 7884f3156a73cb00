"""config/velaflows.yaml, walked beside its document (seeds/001_4b380acdf3b675ec.txt), statement by
statement, against the real preset file, recording production and sandbox upstreams on loopback and
a real SQLite store.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.core import tokens
from tests.support.calls import call
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.presets import answers, cli, run_preset

WRITES = ("POST", "PUT", "PATCH", "DELETE")
WS = "64f1a2b3c4d5e6f7a8b9c0d1"  # the document's example workspace id
OTHER = "650000000000000000000abc"


@pytest.fixture
async def sandbox() -> AsyncIterator[Upstream]:
    up = Upstream(name="sandbox")
    await up.start()
    yield up
    await up.stop()


@pytest.fixture
async def gw(
    upstream: Upstream, sandbox: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[RunningGateway]:
    env = {"UPSTREAM_URL": upstream.url, "SANDBOX_UPSTREAM_URL": sandbox.url}
    async with run_preset("velaflows", monkeypatch, tmp_path, **env) as g:
        await g.services.create_workspace("Acme", "acme", WS)
        await g.services.create_workspace("Other", "other", OTHER)
        yield g


async def token(gw: RunningGateway, *scopes: str, ws: str = WS, type: str = "sk_live") -> str:
    _, plaintext = await gw.services.create_token(
        workspace=ws, name="Production API", scopes=list(scopes), type=type
    )
    return plaintext


def headers(tok: str | None, ws: str | None = WS) -> dict[str, str]:
    h = {}
    if tok is not None:
        h["Authorization"] = f"Bearer {tok}"
    if ws is not None:
        h["x-workspace-id"] = ws
    return h


# "Every request must include an Authorization header with your token and an x-workspace-id header"
# Example request: GET /api/v1/inbox/conversations with both headers.
async def test_example_request_with_both_headers(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    tok = await token(gw, "inbox:read")
    status, body = await call(http, "GET", f"{gw.url}/api/v1/inbox/conversations", headers(tok))
    assert status == 200, body
    assert body == {"upstream": "up", "method": "GET", "path": "/api/v1/inbox/conversations"}
    assert upstream.last.header("X-Gateway-Workspace-Id") == WS
    assert upstream.last.header("Authorization") is None


# "... and an x-workspace-id header to identify which workspace you're operating in"
async def test_workspace_header_is_required_on_every_request(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    tok = await token(gw, "inbox:read")
    url = f"{gw.url}/api/v1/inbox/conversations"
    status, body = await call(http, "GET", url, headers(tok, ws=None))
    assert (status, body["error"]["code"]) == (400, "WORKSPACE_REQUIRED")
    assert "x-workspace-id" in body["error"]["message"]


# "Your workspace ID is a 24-character MongoDB ObjectId."
async def test_workspace_ids_are_24_hex_object_ids(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    minted = await gw.services.create_workspace("Minted")
    assert re.fullmatch(r"[0-9a-f]{24}", minted.id)
    tok = await token(gw, "inbox:read")
    url = f"{gw.url}/api/v1/inbox/conversations"
    for bad in ("acme", WS[:-1], WS + "0", "64f1a2b3c4d5e6f7a8b9c0dz", "ws_" + WS[3:]):
        status, body = await call(http, "GET", url, headers(tok, ws=bad))
        assert (status, body["error"]["code"]) == (400, "INVALID_WORKSPACE"), bad


# "sk_live_a1b2...The first 16 characters (sk_live_a1b2c3d4) are the visible prefix, shown in the
# dashboard so you can identify tokens." / "Both token types are 48+ characters long."
# / "Copy your token immediately - it will only be shown once"
async def test_token_format_and_visible_prefix_in_listings(gw: RunningGateway) -> None:
    env = {"GATEWAY_STORE": gw.config.store}
    seen = {}
    for kind in ("sk_live_", "sk_test_"):
        out = cli(
            "velaflows",
            "token",
            "create",
            "--workspace",
            WS,
            "--name",
            "Zapier Integration",
            "--type",
            kind,
            "--scope",
            "inbox:read",
            env=env,
        )
        assert out.returncode == 0, out.stderr
        created = json.loads(out.stdout)
        tok = created["token"]
        assert tok.startswith(kind) and len(tok) >= 48
        assert created["prefix"] == tok[:16]
        seen[created["id"]] = tok
    listed = cli("velaflows", "token", "list", "--workspace", WS, env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    for tid, tok in seen.items():
        assert rows[tid]["prefix"] == tok[:16]
        assert rows[tid]["name"] == "Zapier Integration"
        assert tok[16:] not in listed.stdout  # "The rest is the secret portion."


# Token Format table: "sk_live_ | Production | Accesses real production data",
# "sk_test_ | Sandbox | Accesses test/sandbox data", "The prefix tells you which environment the
# token operates against."
async def test_live_tokens_reach_production_and_test_tokens_only_the_sandbox(
    gw: RunningGateway, upstream: Upstream, sandbox: Upstream, http: aiohttp.ClientSession
) -> None:
    live = await token(gw, "crm:read")
    test = await token(gw, "crm:read", type="sk_test")
    url = f"{gw.url}/api/v1/crm/leads"
    for _ in range(3):
        status, body = await call(http, "GET", url, headers(live))
        assert (status, body["upstream"]) == (200, "up")
        status, body = await call(http, "GET", url, headers(test))
        assert (status, body["upstream"]) == (200, "sandbox")
    assert len(upstream.seen) == 3 and len(sandbox.seen) == 3
    assert {s.header("X-Gateway-Environment") for s in sandbox.seen} == {"test"}
    assert {s.header("X-Gateway-Environment") for s in upstream.seen} == {"live"}


# "sk_test_ ... Accesses test/sandbox data (when available)": with no sandbox configured, test
# tokens get a clear error and never reach production.
async def test_without_a_sandbox_test_tokens_get_a_clear_error(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with run_preset("velaflows", monkeypatch, tmp_path, UPSTREAM_URL=upstream.url) as g:
        await g.services.create_workspace("Acme", "acme", WS)
        test = await token(g, "crm:read", type="sk_test")
        live = await token(g, "crm:read")
        url = f"{g.url}/api/v1/crm/leads"
        status, body = await call(http, "GET", url, headers(test))
        assert (status, body["error"]["code"]) == (403, "ENVIRONMENT_UNAVAILABLE")
        assert "test environment" in body["error"]["message"]
        assert upstream.seen == []
        assert (await call(http, "GET", url, headers(live)))[0] == 200


# "Available Scopes": 19 scopes plus admin:all (and the gateway's own tokens:read/tokens:write
# for managing tokens, issue 17, which admin:all implies).
async def test_the_nineteen_scopes_plus_admin_all(gw: RunningGateway) -> None:
    known = gw.config.scopes.known - {"tokens:read", "tokens:write"}
    assert len(known) == 20 and "admin:all" in known
    assert gw.config.scopes.superuser == "admin:all"
    assert {s.split(":")[0] for s in known} == {
        "inbox",
        "crm",
        "contacts",
        "channels",
        "workflows",
        "webhooks",
        "ai",
        "tags",
        "analytics",
        "admin",
    }


# Each scope row guards its area under /api/v1/: read scopes by GET/HEAD, write scopes by the rest.
@pytest.mark.parametrize(
    ("path", "read", "write"),
    [
        ("/api/v1/inbox/conversations/1", "inbox:read", "inbox:write"),
        ("/api/v1/contacts/c1", "contacts:read", "contacts:write"),
        ("/api/v1/channels/whatsapp", "channels:read", "channels:write"),
        ("/api/v1/workflows/w1/executions", "workflows:read", "workflows:write"),
        ("/api/v1/webhooks/h1", "webhooks:read", "webhooks:write"),
        ("/api/v1/ai/knowledge-base", "ai:read", "ai:write"),
        ("/api/v1/tags/t1", "tags:read", "tags:write"),
    ],
)
async def test_read_and_write_scopes_guard_their_area(
    gw: RunningGateway, http: aiohttp.ClientSession, path: str, read: str, write: str
) -> None:
    url = gw.url + path
    reader, writer = await token(gw, read), await token(gw, write)
    assert (await call(http, "GET", url, headers(reader)))[0] == 200
    status, body = await call(http, "GET", url, headers(writer))  # write does not imply read
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
    for method in WRITES:
        status, body = await call(http, method, url, headers(reader))
        assert (status, body["error"]["code"]) == (403, "FORBIDDEN"), method
        assert (await call(http, method, url, headers(writer)))[0] == 200, method


# crm:read "View leads", crm:create "Create new leads", crm:update "Update existing leads, move
# between stages", crm:delete "Delete leads".
async def test_crm_scopes_split_by_method(gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    url = f"{gw.url}/api/v1/crm/leads/l1"
    by_method = {
        "GET": "crm:read",
        "POST": "crm:create",
        "PUT": "crm:update",
        "PATCH": "crm:update",
        "DELETE": "crm:delete",
    }
    for scope in sorted(set(by_method.values())):
        tok = await token(gw, scope)
        for method, needed in by_method.items():
            status, _ = await call(http, method, url, headers(tok))
            assert status == (200 if needed == scope else 403), (scope, method)


# analytics:read "View analytics and reports" - the only analytics scope, so only reads exist.
async def test_analytics_is_read_only(gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    tok = await token(gw, "analytics:read")
    url = f"{gw.url}/api/v1/analytics/reports"
    assert (await call(http, "GET", url, headers(tok)))[0] == 200
    status, body = await call(http, "POST", url, headers(tok))
    assert (status, body["error"]["code"]) == (405, "METHOD_NOT_ALLOWED")


# admin:all "Full administrative access (use sparingly)"
async def test_admin_all_reaches_every_area(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    tok = await token(gw, "admin:all")
    for area in ("inbox", "crm", "contacts", "channels", "workflows", "webhooks", "ai", "tags"):
        for method in ("GET", "DELETE"):
            assert (await call(http, method, f"{gw.url}/api/v1/{area}/x", headers(tok)))[0] == 200
    assert (await call(http, "GET", f"{gw.url}/api/v1/analytics/x", headers(tok)))[0] == 200


# "Scope Examples": the three example token sets reach exactly what they describe.
async def test_scope_examples(gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    async def status(tok: str, method: str, area_path: str) -> int:
        return (await call(http, method, f"{gw.url}/api/v1/{area_path}", headers(tok)))[0]

    # "A read-only dashboard integration might use: inbox:read, crm:read, contacts:read,
    # analytics:read"
    dash = await token(gw, "inbox:read", "crm:read", "contacts:read", "analytics:read")
    for p in ("inbox/conversations", "crm/leads", "contacts/c1", "analytics/overview"):
        assert await status(dash, "GET", p) == 200, p
    for method, p in (
        ("POST", "inbox/conversations/1/reply"),
        ("POST", "crm/leads"),
        ("PATCH", "contacts/c1"),
        ("GET", "workflows"),
    ):
        assert await status(dash, method, p) == 403, p

    # "A chatbot that replies to messages might use: inbox:read, inbox:write, channels:read,
    # channels:write, ai:read"
    bot = await token(gw, "inbox:read", "inbox:write", "channels:read", "channels:write", "ai:read")
    for method, p in (
        ("GET", "inbox/conversations"),
        ("POST", "inbox/conversations/1/reply"),
        ("POST", "channels/whatsapp/messages"),
        ("GET", "ai/knowledge-base"),
    ):
        assert await status(bot, method, p) == 200, p
    for method, p in (("PUT", "ai/training"), ("GET", "crm/leads"), ("GET", "contacts")):
        assert await status(bot, method, p) == 403, p

    # "A CRM sync integration might use: crm:read, crm:create, crm:update, contacts:read,
    # contacts:write"
    sync = await token(
        gw, "crm:read", "crm:create", "crm:update", "contacts:read", "contacts:write"
    )
    for method, p in (
        ("GET", "crm/leads"),
        ("POST", "crm/leads"),
        ("PATCH", "crm/leads/l1"),
        ("GET", "contacts/c1"),
        ("PUT", "contacts/c1"),
    ):
        assert await status(sync, method, p) == 200, p
    for method, p in (("DELETE", "crm/leads/l1"), ("GET", "inbox/conversations")):
        assert await status(sync, method, p) == 403, p


# Error Responses: "401 | UNAUTHORIZED | Token is missing, invalid, expired, or revoked"
async def test_401_unauthorized_for_missing_invalid_expired_revoked(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    url = f"{gw.url}/api/v1/inbox/conversations"

    async def refused(h: dict[str, str]) -> None:
        status, body = await call(http, "GET", url, h)
        assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")

    await refused(headers(None))  # missing
    await refused(headers("sk_live_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0"))  # the doc's sample
    await refused(headers(tokens.mint("sk_live_")))  # well-formed, never issued

    # "Expired tokens are automatically invalidated and cannot be used."
    rec, expiring = await gw.services.create_token(
        workspace=WS, name="e", scopes=["inbox:read"], expires_at=time.time() + 3600
    )
    assert (await call(http, "GET", url, headers(expiring)))[0] == 200
    await gw.services.store.set_token_expiry(rec.id, time.time() - 1)
    await eventually(answers(http, "GET", url, headers(expiring), 401), within=1.0)
    await refused(headers(expiring))

    # "Revoked tokens are immediately invalidated. Any API request using a revoked token will
    # receive a 401 Unauthorized response."
    rec2, revoked = await gw.services.create_token(workspace=WS, name="r", scopes=["inbox:read"])
    assert (await call(http, "GET", url, headers(revoked)))[0] == 200  # now cached
    await gw.services.revoke_token(rec2.id)
    took = await eventually(answers(http, "GET", url, headers(revoked), 401), within=1.0)
    assert took <= 1.0
    await refused(headers(revoked))


# "Tokens are active from the moment they're created."
async def test_tokens_are_active_at_creation(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    tok = await token(gw, "tags:read")
    # The very first request, straight after creation, with no activation step.
    assert (await call(http, "GET", f"{gw.url}/api/v1/tags", headers(tok)))[0] == 200


# Error Responses: "403 | FORBIDDEN | Token doesn't have the required scope for this endpoint"
async def test_403_forbidden_for_a_missing_scope(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    tok = await token(gw, "inbox:read")
    status, body = await call(http, "GET", f"{gw.url}/api/v1/webhooks", headers(tok))
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
    assert body["error"]["required_scopes"] == ["webhooks:read"]


# Error Responses: "403 | WORKSPACE_ACCESS_DENIED | Token doesn't have access to the specified
# workspace"
async def test_403_workspace_access_denied_for_another_workspace(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    tok = await token(gw, "admin:all")
    url = f"{gw.url}/api/v1/inbox/conversations"
    for ws in (OTHER, "0123456789abcdef01234567"):  # another workspace; one that does not exist
        status, body = await call(http, "GET", url, headers(tok, ws=ws))
        assert (status, body["error"]["code"]) == (403, "WORKSPACE_ACCESS_DENIED"), ws

"""Issue 4, Velt's POST /v2/workspace/apikey/create and allowed domains (003_0f78798a232af917.txt).

Runs the real config/velt.yaml preset against a recording upstream on loopback.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.test_preset_velt import assert_velt_error, auth_token, velt_headers
from tests.support.calls import call
from tests.support.harness import RunningGateway, Upstream
from tests.support.presets import run_preset

CREATE = "/v2/workspace/apikey/create"


@pytest.fixture
async def gw(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[RunningGateway]:
    async with run_preset("velt", monkeypatch, tmp_path, UPSTREAM_URL=upstream.url) as g:
        await g.services.create_workspace("Acme", "acme")
        await g.services.create_workspace("Other", "other")
        yield g


async def create(
    gw: RunningGateway, http: aiohttp.ClientSession, data: Any, ws: str = "acme"
) -> tuple[int, Any, str]:
    ws_id, token = await auth_token(gw, ws)
    status, body = await call(http, "POST", gw.url + CREATE, velt_headers(ws_id, token), json=data)
    return status, body, ws_id


def key_headers(
    ws_id: str, key: str, origin: str | None = None, referer: str | None = None
) -> dict[str, str]:
    h = {"x-velt-workspace-id": ws_id, "x-velt-api-key": key}
    if origin:
        h["Origin"] = origin
    if referer:
        h["Referer"] = referer
    return h


# Example Request {"data": {"ownerEmail": "owner@example.com", "type": "testing",
# "createAuthToken": true}} -> Success Response {"result": {"status": "success", "message":
# "API key created successfully.", "data": {"apiKey": "your_new_api_key"}}}
async def test_the_documented_example(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    status, body, ws_id = await create(
        gw,
        http,
        {"data": {"ownerEmail": "owner@example.com", "type": "testing", "createAuthToken": True}},
    )
    assert status == 200, body
    assert body["result"]["status"] == "success"
    assert body["result"]["message"] == "API key created successfully."
    data = body["result"]["data"]
    assert data["apiKey"].startswith("velt_ak_")
    assert data["authToken"].startswith("velt_at_")
    assert not any(s.path.startswith(CREATE) for s in upstream.seen), "served by the gateway"
    # the returned auth token is a working workspace credential
    status, _ = await call(
        http, "POST", f"{gw.url}/v2/organizations/get", velt_headers(ws_id, data["authToken"])
    )
    assert status == 200
    # the key is owned by ownerEmail's user and its settings are in the audit log
    tokens = await gw.services.list_tokens("acme")
    key = next(t for t in tokens if t.visible_prefix == data["apiKey"][:16])
    owner = await gw.services.user("owner@example.com")
    assert key.user_id == owner.id
    events = await gw.services.store.list_audit(workspace_id=ws_id)
    settings = next(e for e in events if e.action == "velt.apikey.settings")
    assert json.loads(settings.detail or "{}")["type"] == "testing"


async def test_without_create_auth_token_only_the_key(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await create(
        gw, http, {"data": {"ownerEmail": "o@example.com", "apiKeyName": "web"}}
    )
    assert status == 200 and set(body["result"]["data"]) == {"apiKey"}
    names = {t.name for t in await gw.services.list_tokens("acme")}
    assert "web" in names


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"data": {}}, "ownerEmail is required."),
        ({"data": {"ownerEmail": ""}}, "ownerEmail is required."),
        ({"data": {"type": "testing"}}, "ownerEmail is required."),
        ({}, "data is required."),
        ({"data": "x"}, "data must be an object."),
        ({"data": {"ownerEmail": "o@example.com"}, "extra": 1}, "Unknown field: extra."),
        ({"data": {"ownerEmail": 5}}, "ownerEmail must be a string."),
        ({"data": {"ownerEmail": "not-an-email"}}, "ownerEmail must be a valid email address."),
        (
            {"data": {"ownerEmail": "o@example.com", "createAuthToken": "yes"}},
            "createAuthToken must be a boolean.",
        ),
        ({"data": {"ownerEmail": "o@example.com", "type": 1}}, "type must be a string."),
        (
            {"data": {"ownerEmail": "o@example.com", "apiKeyName": " "}},
            "apiKeyName must not be empty.",
        ),
        (
            {"data": {"ownerEmail": "o@example.com", "allowedDomains": "a.com"}},
            "allowedDomains must be an array of strings.",
        ),
        (
            {"data": {"ownerEmail": "o@example.com", "allowedDomains": ["bad domain"]}},
            "allowedDomains contains an invalid domain: 'bad domain'.",
        ),
        (
            {"data": {"ownerEmail": "o@example.com", "planInfo": "pro"}},
            "planInfo must be an object.",
        ),
        (
            {"data": {"ownerEmail": "o@example.com", "planInfo": {"type": 3}}},
            "planInfo.type must be a string.",
        ),
        (
            {"data": {"ownerEmail": "o@example.com", "emailServiceConfig": {"bogus": "x"}}},
            "Unknown field: data.emailServiceConfig.bogus.",
        ),
        (
            {"data": {"ownerEmail": "o@example.com", "webhookServiceConfig": {"authToken": 1}}},
            "webhookServiceConfig.authToken must be a string.",
        ),
        (
            {"data": {"ownerEmail": "o@example.com", "useEmailService": 1}},
            "useEmailService must be a boolean.",
        ),
        (
            {"data": {"ownerEmail": "o@example.com", "surprise": True}},
            "Unknown field: data.surprise.",
        ),
        ([], "The request body must be a JSON object."),
    ],
)
async def test_each_bad_field_is_invalid_argument(
    gw: RunningGateway, http: aiohttp.ClientSession, payload: Any, message: str
) -> None:
    status, body, _ = await create(gw, http, payload)
    assert status == 400
    assert_velt_error(body, "INVALID_ARGUMENT")
    assert body["error"]["message"] == message


async def test_only_the_workspace_auth_token_creates_keys(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    _, body, ws_id = await create(gw, http, {"data": {"ownerEmail": "o@example.com"}})
    key = body["result"]["data"]["apiKey"]
    # an API key cannot mint more keys
    status, body = await call(
        http,
        "POST",
        gw.url + CREATE,
        {"x-velt-workspace-id": ws_id, "x-velt-api-key": key, "Origin": "http://localhost"},
        json={"data": {"ownerEmail": "o@example.com"}},
    )
    assert status == 403
    assert_velt_error(body, "PERMISSION_DENIED")
    # no credential, or another workspace's auth token
    status, body = await call(
        http, "POST", gw.url + CREATE, velt_headers(ws_id, None), json={"data": {}}
    )
    assert status == 401
    assert_velt_error(body, "UNAUTHENTICATED")
    _, other = await auth_token(gw, "other")
    status, body = await call(
        http, "POST", gw.url + CREATE, velt_headers(ws_id, other), json={"data": {}}
    )
    assert status == 403


# Done when: "a Velt workspace creates a key limited to one domain and the key works from that
# origin only".
async def test_a_key_limited_to_one_domain_works_from_that_origin_only(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    status, body, ws_id = await create(
        gw, http, {"data": {"ownerEmail": "o@example.com", "allowedDomains": ["app.example.com"]}}
    )
    key = body["result"]["data"]["apiKey"]
    url = f"{gw.url}/v1/comments"
    async with http.get(
        url, headers=key_headers(ws_id, key, origin="https://app.example.com")
    ) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert "Origin" in r.headers["Vary"]
    # a Referer stands in when there is no Origin
    status, _ = await call(
        http, "GET", url, key_headers(ws_id, key, referer="https://app.example.com/page")
    )
    assert status == 200
    before = len(upstream.seen)
    for origin in (
        "https://evil.example.com",
        "https://app.example.com.evil.io",
        "http://localhost:3000",
        None,
    ):
        status, body = await call(http, "GET", url, key_headers(ws_id, key, origin=origin))
        assert status == 403, origin
        assert_velt_error(body, "PERMISSION_DENIED")
    assert len(upstream.seen) == before


async def test_localhost_added_when_asked(gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    _, body, ws_id = await create(
        gw,
        http,
        {
            "data": {
                "ownerEmail": "o@example.com",
                "allowedDomains": ["*.example.com"],
                "addLocalHostToAllowedDomains": True,
            }
        },
    )
    key = body["result"]["data"]["apiKey"]
    for origin, expected in (
        ("http://localhost:3000", 200),
        ("http://127.0.0.1:5173", 200),
        ("https://docs.example.com", 200),
        ("https://example.com", 403),  # *.example.com means subdomains
        ("https://localhost.evil.io", 403),
    ):
        status, _ = await call(
            http, "GET", f"{gw.url}/v1/x", key_headers(ws_id, key, origin=origin)
        )
        assert status == expected, origin


async def test_cors_preflight_for_allowed_origins_only(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    await create(
        gw, http, {"data": {"ownerEmail": "o@example.com", "allowedDomains": ["app.example.com"]}}
    )
    pre = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-velt-api-key, x-velt-workspace-id, content-type",
    }
    async with http.options(f"{gw.url}/v1/comments", headers=pre) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert r.headers["Access-Control-Allow-Methods"] == "POST"
        assert "x-velt-api-key" in r.headers["Access-Control-Allow-Headers"]
    status, body = await call(
        http, "OPTIONS", f"{gw.url}/v1/comments", {**pre, "Origin": "https://evil.io"}
    )
    assert status == 403
    assert_velt_error(body, "PERMISSION_DENIED")
    # a method no route serves is not pre-approved
    status, _ = await call(
        http, "OPTIONS", f"{gw.url}/v1/comments", {**pre, "Access-Control-Request-Method": "DELETE"}
    )
    assert status == 405


# Issue 17 §2: a public browser key is not a server credential. Anyone has it (it is in the web
# page) and anyone outside a browser forges Origin, so the /v2 REST API takes the workspace auth
# token only, with or without the key's own allowed origin.
@pytest.mark.parametrize(
    "path", ["/v2/organizations/get", "/v2/users/get", "/v2/workspace/apikey/create"]
)
async def test_a_browser_key_is_refused_on_the_server_api_even_from_its_own_origin(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession, path: str
) -> None:
    _, body, ws_id = await create(
        gw, http, {"data": {"ownerEmail": "o@example.com", "allowedDomains": ["app.example.com"]}}
    )
    key = body["result"]["data"]["apiKey"]
    before = len(upstream.seen)
    for origin in ("https://app.example.com", "https://evil.example.com", None):
        status, answer = await call(
            http, "POST", gw.url + path, key_headers(ws_id, key, origin=origin), json={"data": {}}
        )
        assert status == 403, (path, origin)
        assert_velt_error(answer, "PERMISSION_DENIED")
    assert len(upstream.seen) == before
    # the browser route still takes it from its origin
    status, _ = await call(
        http, "GET", f"{gw.url}/v1/x", key_headers(ws_id, key, origin="https://app.example.com")
    )
    assert status == 200


# Decision (docs/security.md "Management doors"): a browser key created with no allowedDomains
# works from NO origin, not from every origin: "any origin" is what a forged Origin says.
async def test_a_browser_key_without_allowed_domains_works_from_no_origin(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    status, body, ws_id = await create(gw, http, {"data": {"ownerEmail": "o@example.com"}})
    assert status == 200  # the documented request still succeeds ...
    key = body["result"]["data"]["apiKey"]
    before = len(upstream.seen)
    for origin in ("https://anything.example", "http://localhost:3000", None):
        status, answer = await call(
            http, "GET", f"{gw.url}/v1/x", key_headers(ws_id, key, origin=origin)
        )
        assert status == 403, origin  # ... but the key is refused everywhere
        assert_velt_error(answer, "PERMISSION_DENIED")
    assert len(upstream.seen) == before


async def test_the_auth_token_needs_tokens_write_to_create_keys(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    ws = await gw.services.workspace("acme")
    _, reader = await gw.services.create_token(
        workspace="acme", name="reader", scopes=["tokens:read"]
    )
    status, body = await call(
        http,
        "POST",
        gw.url + CREATE,
        velt_headers(ws.id, reader),
        json={"data": {"ownerEmail": "o@example.com", "createAuthToken": True}},
    )
    assert status == 403
    assert_velt_error(body, "PERMISSION_DENIED")


async def test_anyone_reading_a_page_cannot_revoke_its_public_browser_key(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    """A browser key is published in every page that embeds the SDK: "leaked" means nothing for
    it, and the anonymous leak endpoint let any visitor disable a customer's integration (issue
    17 review). Keys of a type with ``require_allowed_domains`` are not revoked there; the
    workspace's own tokens still are."""
    status, body, ws_id = await create(
        gw, http, {"data": {"ownerEmail": "o@example.com", "allowedDomains": ["app.example.com"]}}
    )
    key = body["result"]["data"]["apiKey"]
    _, server_token = await auth_token(gw, "acme")
    status, answer = await call(
        http, "POST", gw.url + "/credentials/revoke", json={"tokens": [key, server_token]}
    )
    assert status == 202 and answer == {"received": 2}
    headers = key_headers(ws_id, key, origin="https://app.example.com")
    assert (await call(http, "GET", f"{gw.url}/v1/comments", headers))[0] == 200
    status, _ = await call(
        http, "POST", f"{gw.url}/v2/organizations/get", velt_headers(ws_id, server_token), json={}
    )
    assert status == 401  # a server secret that leaked is revoked as before

"""The attack list of DESIGN.md, one parametrized case per item, against the running gateway.

Every case is sent as raw bytes over a socket (no client library normalizes it first) to a gateway
whose protected ``/admin`` route sits beside a public ``/public/**`` route. Each case must be
refused with a JSON error carrying a stable code, and the upstream must receive nothing: a refusal
that still forwarded the request would be no refusal at all. JWT and OAuth tricks live with their
features (tests/e2e/test_sessions.py, tests/e2e/test_oauth.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import GatewayFactory
from tests.e2e.core_config import CORE
from tests.support.harness import RunningGateway, Upstream
from tests.support.rawhttp import exchange, request_bytes


@dataclass
class Tokens:
    reader: str  # items:read in acme: may read items, may not touch /admin
    admin: str  # admin:all in acme
    other: str  # items:read in another workspace
    expired: str
    revoked: str


@pytest.fixture
async def gw(make_gateway: GatewayFactory, upstream: Upstream) -> RunningGateway:
    return await make_gateway(
        CORE, up=upstream.url, sandbox=upstream.url, timeout=2, trusted="10.9.9.9/32"
    )


@pytest.fixture
async def tokens(gw: RunningGateway) -> Tokens:
    svc = gw.services
    await svc.create_workspace("Acme", "acme", "ws_acme")
    await svc.create_workspace("Other", "other", "ws_other")

    async def mint(scopes: list[str], ws: str = "acme", **kw: Any) -> tuple[str, str]:
        rec, tok = await svc.create_token(workspace=ws, name="t", scopes=scopes, **kw)
        return rec.id, tok

    _, reader = await mint(["items:read"])
    _, admin = await mint(["admin:all"])
    _, other = await mint(["items:read"], ws="other")
    eid, expired = await mint(["items:read"], expires_at=time.time() + 3600)
    await svc.store.set_token_expiry(eid, time.time() - 1)
    rid, revoked = await mint(["items:read"])
    await svc.revoke_token(rid)
    return Tokens(reader, admin, other, expired, revoked)


async def refused(
    gw: RunningGateway, upstream: Upstream, data: bytes, statuses: set[int]
) -> str | None:
    """Send ``data``; assert a JSON refusal in ``statuses`` and that the upstream got nothing."""
    before = len(upstream.seen)
    resp = await exchange(gw.proxy_port, data)
    assert resp.status in statuses, (resp.status, resp.body[:300])
    assert resp.code is not None, f"refusal without a JSON error code: {resp.body[:300]!r}"
    assert len(upstream.seen) == before, f"forwarded: {[s.path for s in upstream.seen[before:]]}"
    return resp.code


# -- the baseline: the two routes work as configured --------------------------------------------


async def test_baseline_public_open_admin_needs_admin_scope(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens
) -> None:
    ok = await exchange(gw.proxy_port, request_bytes("GET", "/public/x"))
    assert ok.status == 200 and upstream.last.path == "/public/x"
    auth = [("Authorization", f"Bearer {tokens.admin}")]
    ok = await exchange(gw.proxy_port, request_bytes("GET", "/admin/x", auth))
    assert ok.status == 200 and upstream.last.path == "/admin/x"
    no = await exchange(
        gw.proxy_port,
        request_bytes("GET", "/admin/x", [("Authorization", f"Bearer {tokens.reader}")]),
    )
    assert no.status == 403 and no.code == "FORBIDDEN"


# -- path tricks -------------------------------------------------------------------------------------

PATH_TRICKS = [
    "/public/../admin",
    "/public/../admin/x",
    "/public/%2e%2e/admin",
    "/public/%2E%2E/admin",
    "/public/.%2e/admin",
    "/public/..%2fadmin",
    "/public%2f..%2fadmin",
    "/admin%2Fx",
    "/%2e%2e/admin",
    "/./admin",
    "//admin",
    "/public//admin",
    "/admin;x=y",
    "/public;/../admin",
    "/ADMIN",
    "/Admin/x",
    "/admin/",
    "/admin%23x",
    "/admin?x=/public",
    "/public%5C..%5Cadmin",
    "/public\\..\\admin",
    "/admin%5Cx",
    "/admin%00",
    "/public/x%00/../../admin",
    "/admin%2500",
    "/public/%c0%ae%c0%ae/admin",
    "/admin%ff",
    "/admin%zz",
    "/admin%",
    "/public/%0d%0aX-Gateway-User-Id:%20evil",
    "http://127.0.0.1/admin",
    "*",
]


@pytest.mark.parametrize(
    ("method", "target", "code"),
    [
        ("OPTIONS", "*", "INVALID_PATH"),
        ("GET", "*", "BAD_REQUEST"),
        ("CONNECT", "example.com:443", "INVALID_PATH"),
        ("GET", "http://example.com", "INVALID_PATH"),
    ],
)
async def test_targets_without_a_path_get_a_json_refusal(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens, method: str, target: str, code: str
) -> None:
    # No path-shaped route can match these; they must still meet the edge (JSON, request id,
    # metrics), not aiohttp's plain-text 404. GET * is refused earlier, by the parser.
    headers = [("Authorization", f"Bearer {tokens.reader}")]
    got = await refused(gw, upstream, request_bytes(method, target, headers), {400})
    assert got == code


@pytest.mark.parametrize("target", PATH_TRICKS)
@pytest.mark.parametrize("who", ["anonymous", "reader"])
async def test_path_tricks_never_reach_admin(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens, target: str, who: str
) -> None:
    headers = [] if who == "anonymous" else [("Authorization", f"Bearer {tokens.reader}")]
    await refused(gw, upstream, request_bytes("GET", target, headers), {400, 401, 403, 404})


# -- header tricks -----------------------------------------------------------------------------------

SPOOFS = [
    "X-Gateway-User-Id",
    "x-gateway-user-id",
    "X_Gateway_User_Id",
    "x_gateway_user_id",
    "X-Gateway-Workspace-Id",
    "X-Gateway-Scopes",
    "X-Gateway-Token-Id",
]


@pytest.mark.parametrize("name", SPOOFS)
async def test_spoofed_identity_headers_never_reach_upstream(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens, name: str
) -> None:
    headers = [("Authorization", f"Bearer {tokens.reader}"), (name, "evil")]
    resp = await exchange(gw.proxy_port, request_bytes("GET", "/api/items", headers))
    assert resp.status == 200
    seen = upstream.last
    assert all("evil" not in v for vs in seen.headers.values() for v in vs), seen.headers
    assert seen.header("X-Gateway-Scopes") == "items:read"


HEADER_TRICKS: list[tuple[str, list[tuple[str, str]], str, set[int]]] = [
    # (id, headers with {t} for the reader token, target, accepted statuses)
    (
        "duplicate-authorization",
        [("Authorization", "Bearer {t}"), ("Authorization", "Bearer {t}")],
        "/api/items",
        {400},
    ),
    (
        "authorization-and-api-key",
        [("Authorization", "Bearer {t}"), ("X-Api-Key", "{t}")],
        "/api/items",
        {400},
    ),
    ("header-and-query", [("Authorization", "Bearer {t}")], "/api/items?access_token={t}", {400}),
    ("query-only", [], "/api/items?access_token={t}", {400, 401}),
    (
        "workspace-cr",
        [("Authorization", "Bearer {t}"), ("X-Workspace-Id", "acme\rX: y")],
        "/api/items",
        {400},
    ),
    (
        "workspace-lf",
        [("Authorization", "Bearer {t}"), ("X-Workspace-Id", "acme\nX-Gateway-User-Id: evil")],
        "/api/items",
        {400},
    ),
    (
        "workspace-nul",
        [("Authorization", "Bearer {t}"), ("X-Workspace-Id", "ac\x00me")],
        "/api/items",
        {400},
    ),
    (
        "workspace-obs-fold",
        [("Authorization", "Bearer {t}"), ("X-Workspace-Id", "acme\r\n other")],
        "/api/items",
        {400},
    ),
    (
        "workspace-two-values",
        [("Authorization", "Bearer {t}"), ("X-Workspace-Id", "acme"), ("X-Workspace-Id", "other")],
        "/api/items",
        {400},
    ),
    (
        "upgrade-h2c",
        [
            ("Authorization", "Bearer {t}"),
            ("Connection", "Upgrade, HTTP2-Settings"),
            ("Upgrade", "h2c"),
            ("HTTP2-Settings", "AAMAAABkAAQAAP__"),
        ],
        "/api/items",
        {400},
    ),
    ("upgrade-h2c-public", [("Connection", "Upgrade"), ("Upgrade", "h2c")], "/public/x", {400}),
    ("authorization-nul", [("Authorization", "Bearer {t}\x00")], "/api/items", {400, 401}),
    ("basic-scheme", [("Authorization", "Basic {t}")], "/api/items", {401}),
]


@pytest.mark.parametrize(
    ("headers", "target", "statuses"),
    [pytest.param(h, t, s, id=i) for i, h, t, s in HEADER_TRICKS],
)
async def test_header_tricks_are_refused(
    gw: RunningGateway,
    upstream: Upstream,
    tokens: Tokens,
    headers: list[tuple[str, str]],
    target: str,
    statuses: set[int],
) -> None:
    def fill(v: str) -> str:
        return v.replace("{t}", tokens.reader).encode().decode("unicode_escape")

    hs = [(k, fill(v)) for k, v in headers]
    await refused(gw, upstream, request_bytes("GET", fill(target), hs), statuses)


async def test_forwarded_headers_from_an_untrusted_client_are_replaced(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens
) -> None:
    headers = [
        ("Authorization", f"Bearer {tokens.reader}"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "https"),
        ("X-Real-IP", "6.6.6.6"),
        ("Forwarded", "for=6.6.6.6;host=evil.example"),
    ]
    resp = await exchange(gw.proxy_port, request_bytes("GET", "/api/items", headers))
    assert resp.status == 200
    seen = upstream.last
    values = " ".join(v for vs in seen.headers.values() for v in vs)
    assert "6.6.6.6" not in values and "evil.example" not in values
    assert seen.header("X-Forwarded-For") == "127.0.0.1"


# -- token tricks ------------------------------------------------------------------------------------


def _flip_checksum(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


TOKEN_TRICKS = {
    "wrong-checksum": (lambda t: _flip_checksum(t.reader), {401}, "UNAUTHORIZED"),
    "wrong-environment-prefix": (
        lambda t: t.reader.replace("gw_live_", "gw_test_", 1),
        {401},
        "UNAUTHORIZED",
    ),
    "truncated": (lambda t: t.reader[:-4], {401}, "UNAUTHORIZED"),
    "expired": (lambda t: t.expired, {401}, "UNAUTHORIZED"),
    "revoked": (lambda t: t.revoked, {401}, "UNAUTHORIZED"),
    "other-workspace": (lambda t: t.other, {403}, "WORKSPACE_ACCESS_DENIED"),
    "lowercased": (lambda t: t.reader.lower(), {401}, "UNAUTHORIZED"),
}


@pytest.mark.parametrize("case", sorted(TOKEN_TRICKS))
async def test_token_tricks_are_refused(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens, case: str
) -> None:
    make, statuses, code = TOKEN_TRICKS[case]
    headers = [("Authorization", f"Bearer {make(tokens)}"), ("X-Workspace-Id", "acme")]
    assert (
        await refused(gw, upstream, request_bytes("GET", "/api/items", headers), statuses) == code
    )


# -- request smuggling ---------------------------------------------------------------------------

SMUGGLED = b"GET /admin/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _framed(framing: list[tuple[str, str]], body: bytes, token: str) -> bytes:
    head = [("Authorization", f"Bearer {token}"), *framing]
    return request_bytes("POST", "/api/items", head, body)


SMUGGLING = {
    "cl-te": ([("Content-Length", "6"), ("Transfer-Encoding", "chunked")], b"0\r\n\r\n" + SMUGGLED),
    "te-cl": (
        [("Transfer-Encoding", "chunked"), ("Content-Length", "4")],
        b"5c\r\n" + SMUGGLED + b"\r\n0\r\n\r\n",
    ),
    "cl-cl-different": ([("Content-Length", "0"), ("Content-Length", "44")], SMUGGLED),
    "cl-list": ([("Content-Length", "0, 44")], SMUGGLED),
    "cl-plus-sign": ([("Content-Length", "+44")], SMUGGLED),
    "cl-hex": ([("Content-Length", "0x2c")], SMUGGLED),
    "te-xchunked": ([("Transfer-Encoding", "xchunked")], b"0\r\n\r\n" + SMUGGLED),
    "te-chunked-identity": ([("Transfer-Encoding", "chunked, identity")], b"0\r\n\r\n" + SMUGGLED),
    "te-space-before-colon": ([("Transfer-Encoding ", "chunked")], b"0\r\n\r\n" + SMUGGLED),
    "te-vertical-tab": ([("Transfer-Encoding", "\x0bchunked")], b"0\r\n\r\n" + SMUGGLED),
    "te-twice": (
        [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "identity")],
        b"0\r\n\r\n" + SMUGGLED,
    ),
    "te-quoted": ([("Transfer-Encoding", '"chunked"')], b"0\r\n\r\n" + SMUGGLED),
    "te-obs-fold": ([("X-Pad", "x\r\n Transfer-Encoding: chunked")], b"0\r\n\r\n" + SMUGGLED),
    "chunk-size-hex-prefix": ([("Transfer-Encoding", "chunked")], b"0x0\r\n\r\n" + SMUGGLED),
    "chunk-size-bare-lf": ([("Transfer-Encoding", "chunked")], b"0\n\n" + SMUGGLED),
}


@pytest.mark.parametrize("case", sorted(SMUGGLING))
async def test_smuggling_is_refused_and_nothing_is_forwarded(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens, case: str
) -> None:
    framing, body = SMUGGLING[case]
    before = len(upstream.seen)
    resp = await exchange(gw.proxy_port, _framed(framing, body, tokens.reader), to_close=True)
    assert resp.status in {400, 501}, (resp.status, resp.body[:200])
    assert resp.code is not None
    # The connection is closed after the refusal, so no smuggled second request is ever parsed.
    assert resp.closed and resp.extra == b""
    assert len(upstream.seen) == before, [s.path for s in upstream.seen[before:]]


async def test_a_valid_chunked_body_is_forwarded_exactly_once_and_whole(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens
) -> None:
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    _, writer = await gw.services.create_token(workspace="acme", name="w", scopes=["items:write"])
    before = len(upstream.seen)
    resp = await exchange(gw.proxy_port, _framed([("Transfer-Encoding", "chunked")], body, writer))
    assert resp.status == 200
    assert len(upstream.seen) == before + 1
    assert upstream.last.body == b"hello world"

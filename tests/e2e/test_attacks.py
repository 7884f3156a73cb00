"""The attack list of DESIGN.md, one parametrized case per item, against the running gateway.

Every case is sent as raw bytes over a socket (no client library normalizes it first) to a gateway
whose protected ``/admin`` route sits beside a public ``/public/**`` route. Each case must be
refused with a JSON error carrying a stable code, and the upstream must receive nothing: a refusal
that still forwarded the request would be no refusal at all. JWT and OAuth tricks live with their
features (tests/e2e/test_sessions.py, tests/e2e/test_oauth.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import pytest

from tests.conftest import GatewayFactory
from tests.support.core_config import CORE
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


TOKEN_TRICKS: dict[str, tuple[Callable[[Tokens], str], set[int], str]] = {
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


# -- only the upstream's own headers reach the upstream (issue 17 §3) --------------------------------

# (name, value): each must be dropped whatever its case or `_` spelling. Values are distinct so
# the assertion can tell which one leaked.
NOT_FORWARDED = [
    # the X-Gateway-* namespace, configured names or not
    ("X-Gateway-User", "evil-user"),
    ("X-Gateway-Role", "evil-role"),
    ("x_gateway_role", "evil-role2"),
    ("X-GATEWAY-IS-ADMIN", "evil-admin"),
    ("X_Gateway_Scopes", "evil-scopes"),
    # `_` twins of headers the gateway owns or trusts
    ("X_Forwarded_For", "6.6.6.1"),
    ("X_Forwarded_Host", "evil-host.example"),
    ("X_Forwarded_Proto", "evil-proto"),
    ("X_Real_IP", "6.6.6.2"),
    ("X_Workspace_Id", "other"),
    ("X_Request_Id", "evil-request-id"),
    ("Transfer_Encoding", "evil-te"),
    ("Content_Length", "999999"),
    ("X_Api_Key", "evil-key"),
    ("X_Authorization", "Bearer evil-x-authorization"),
    ("X-Authorization", "Bearer evil-x-authorization2"),
    ("Content_Type", "application/x-www-form-urlencoded; evil"),
    # client-address headers from an untrusted client
    ("X-Client-IP", "6.6.6.3"),
    ("True-Client-IP", "6.6.6.4"),
    ("CF-Connecting-IP", "6.6.6.5"),
    ("X-Forwarded-Port", "6666"),
    ("X-Forwarded-Prefix", "/evil-prefix"),
    ("X-Forwarded-Server", "evil-server"),
    ("X-Host", "evil-x-host.example"),
    ("x_client_ip", "6.6.6.6"),
    # issue 17 review: names platforms and byp4xx-style bypasses use, forwarded before
    ("X-True-IP", "6.6.6.7"),
    ("Akamai-Client-IP", "6.6.6.8"),
    ("X-Custom-IP-Authorization", "6.6.6.9"),
    ("X-ProxyUser-Ip", "6.6.6.10"),
    ("X-AppEngine-User-IP", "6.6.6.11"),
    ("X-Azure-ClientIP", "6.6.6.12"),
    ("X-Azure-SocketIP", "6.6.6.13"),
    ("X-Envoy-External-Address", "6.6.6.14"),
    ("Front-End-Https", "evil-on"),
    # method and URL overrides, on a route that does not opt in
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-HTTP-Method", "PATCH"),
    ("X-Method-Override", "PUT"),
    ("X_HTTP_Method_Override", "OPTIONS"),
    ("X-Original-URL", "/admin/evil-original"),
    ("X-Rewrite-URL", "/admin/evil-rewrite"),
]


@pytest.mark.parametrize(("name", "value"), NOT_FORWARDED, ids=[n for n, _ in NOT_FORWARDED])
async def test_headers_the_gateway_owns_or_distrusts_never_reach_upstream(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens, name: str, value: str
) -> None:
    headers = [
        ("Authorization", f"Bearer {tokens.reader}"),
        ("X-Workspace-Id", "acme"),
        (name, value),
    ]
    resp = await exchange(gw.proxy_port, request_bytes("GET", "/api/items", headers))
    assert resp.status == 200, resp.body
    seen = upstream.last
    assert name.lower() not in seen.header_names()
    assert all(value not in v for vs in seen.headers.values() for v in vs), seen.headers
    assert seen.method == "GET" and seen.path == "/api/items"
    # What the gateway checked is what the upstream reads.
    assert seen.header("X-Workspace-Id") == "acme"
    assert seen.header("X-Forwarded-For") == "127.0.0.1"


@pytest.mark.parametrize(
    "query",
    [
        "_method=DELETE",
        "%5Fmethod=DELETE",
        "%5fmethod=DELETE",
        "a=1&_method=DELETE&b=2",
        # issue 17 review: a letter escaped (`_%6Dethod`) slipped past a "method" substring
        # check; PHP reads `.method`, ` method` after spaces and `[method` as `_method`
        "_%6Dethod=DELETE",
        "_m%65thod=DELETE",
        ".method=DELETE",
        "%2Emethod=DELETE",
        "+.method=DELETE",
        "[method=DELETE",
        "_method[]=DELETE",
    ],
)
async def test_method_override_in_the_query_is_stripped(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens, query: str
) -> None:
    headers = [("Authorization", f"Bearer {tokens.reader}")]
    resp = await exchange(gw.proxy_port, request_bytes("GET", f"/api/items?{query}", headers))
    assert resp.status == 200
    assert "method" not in unquote_plus(upstream.last.path).lower(), upstream.last.path
    if query.startswith("a=1"):
        assert upstream.last.path == "/api/items?a=1&b=2"


async def test_method_override_in_a_form_body_is_stripped(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens
) -> None:
    _, writer = await gw.services.create_token(workspace="acme", name="w", scopes=["items:write"])
    body = b"a=1&_method=DELETE&%5Fmethod=PUT&_%6Dethod=PUT&.method=PUT&b=2"
    headers = [
        ("Authorization", f"Bearer {writer}"),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Content-Length", str(len(body))),
    ]
    resp = await exchange(gw.proxy_port, request_bytes("POST", "/api/items", headers, body))
    assert resp.status == 200, resp.body
    assert upstream.last.body == b"a=1&b=2"
    assert upstream.last.header("Content-Length") == "7"


def multipart(*fields: tuple[str, bytes]) -> tuple[str, bytes]:
    """A multipart/form-data body: (Content-Type, body); each field is (Content-Disposition
    parameters, value)."""
    parts = b"".join(
        b"--XyZ\r\nContent-Disposition: form-data; " + d.encode() + b"\r\n\r\n" + v + b"\r\n"
        for d, v in fields
    )
    return "multipart/form-data; boundary=XyZ", parts + b"--XyZ--\r\n"


BODY_OVERRIDES = {
    "multipart": multipart(('name="a"', b"1"), ('name="_method"', b"DELETE")),
    "multipart-unquoted": multipart(("name=_method", b"DELETE")),
    "multipart-php-dot": multipart(('name=".method"', b"DELETE")),
    "multipart-rfc2231": multipart(("name*=UTF-8''%5Fmethod", b"DELETE")),
    "multipart-folded": multipart(('\r\n name="_method"', b"DELETE")),  # Rack reads across lines
    # after 300 KB of file: the field arrives in a later chunk than the body's start
    "multipart-late": multipart(
        ('name="f"; filename="a.bin"', b"x" * 300_000), ('name="_method"', b"DELETE")
    ),
    # Rack parses a POST with no Content-Type as an urlencoded form
    "untyped": (None, b"a=1&_method=DELETE"),
    "untyped-escaped": (None, b"_%6Dethod=DELETE"),
    "untyped-empty-type": ("", b"a=1&_method=DELETE"),  # Rack reads an empty type as none
    # Laravel's input bag is the JSON body, and Symfony's getMethod() reads `_method` from it
    "json": ("application/json", b'{"title": "x", "_method": "DELETE"}'),
    "json-escaped": ("application/json", b'{"\\u005fmethod": "DELETE"}'),
    "json-vendor": ("application/vnd.api+json", b'{"_method":"DELETE"}'),
}


@pytest.mark.parametrize("case", sorted(BODY_OVERRIDES))
async def test_method_override_in_a_streamed_body_is_refused(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens, case: str
) -> None:
    """Rack (Rails) and PHP (Laravel, Symfony) take ``_method`` from multipart parts and untyped
    POST bodies too, Laravel from JSON keys; those bodies stream, so the gateway cannot strip the
    field: it abandons the upstream request and answers 400 (issue 17 review: they reached the
    upstream)."""
    _, writer = await gw.services.create_token(workspace="acme", name="w", scopes=["items:write"])
    ctype, body = BODY_OVERRIDES[case]
    headers = [("Authorization", f"Bearer {writer}"), ("Content-Length", str(len(body)))]
    if ctype is not None:
        headers.append(("Content-Type", ctype))
    resp = await exchange(gw.proxy_port, request_bytes("POST", "/api/items", headers, body))
    assert (resp.status, resp.code) == (400, "BAD_REQUEST"), resp.body
    assert not [s for s in upstream.seen if s.method == "POST"], "the upstream acted on it"


async def test_multipart_and_untyped_bodies_without_method_fields_pass_whole(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens
) -> None:
    _, writer = await gw.services.create_token(workspace="acme", name="w", scopes=["items:write"])
    ctype, form = multipart(('name="file"; filename="method.txt"', b"_method=DELETE" * 10_000))
    for content_type, body in (
        (ctype, form),
        (None, b'{"method": "_method"}'),
        ("application/json", b'{"payment_method": "card", "note": "_method"}'),
    ):
        headers = [("Authorization", f"Bearer {writer}"), ("Content-Length", str(len(body)))]
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        resp = await exchange(gw.proxy_port, request_bytes("POST", "/api/items", headers, body))
        assert resp.status == 200, resp.body
        assert upstream.last.body == body


# -- strict HTTP at the edge (issue 17 §4) ---------------------------------------------------------

EDGE_REQUESTS = {
    # llhttp reads a bare-LF request line as HTTP/0.9 and the lines after it as headers
    "bare-lf-request-line": (
        b"GET /public/x\nHost: 127.0.0.1\r\nX-Gateway-User-Id: evil\r\n\r\n",
        400,
        "BAD_REQUEST",
    ),
    "http-0.9": (b"GET /public/x\r\n\r\n", 400, "BAD_REQUEST"),
    "http-2.0-in-http1-line": (
        b"GET /public/x HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n",
        505,
        "HTTP_VERSION_NOT_SUPPORTED",
    ),
    "te-gzip-chunked": (
        b"POST /public/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        b"0\r\n\r\n",
        501,
        "NOT_IMPLEMENTED",
    ),
}


@pytest.mark.parametrize("case", sorted(EDGE_REQUESTS))
async def test_requests_http11_forbids_are_refused_at_the_listener(
    gw: RunningGateway, upstream: Upstream, case: str
) -> None:
    data, status, code = EDGE_REQUESTS[case]
    before = len(upstream.seen)
    resp = await exchange(gw.proxy_port, data, to_close=True)
    assert (resp.status, resp.code) == (status, code), resp.body
    assert resp.closed and resp.extra == b""
    assert resp.headers.get("server") == "gateway"
    assert len(upstream.seen) == before


@pytest.mark.parametrize(("method", "target"), [("TRACE", "/public/x"), ("CONNECT", "/public/x")])
async def test_trace_and_connect_are_405_where_no_route_names_them(
    gw: RunningGateway, upstream: Upstream, method: str, target: str
) -> None:
    before = len(upstream.seen)
    resp = await exchange(gw.proxy_port, request_bytes(method, target))
    assert (resp.status, resp.code) == (405, "METHOD_NOT_ALLOWED"), resp.body
    allowed = {m.strip() for m in resp.headers["allow"].split(",")}
    assert "GET" in allowed and method not in allowed
    assert len(upstream.seen) == before


@pytest.mark.parametrize("raw", [b"gw_live_\xff\xfe", b"\xc3\x28", b"gw_live_" + b"\x80" * 46])
async def test_a_non_utf8_credential_is_401_not_500(
    gw: RunningGateway, upstream: Upstream, raw: bytes
) -> None:
    data = (
        b"GET /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + raw + b"\r\n\r\n"
    )
    before = len(upstream.seen)
    resp = await exchange(gw.proxy_port, data)
    assert (resp.status, resp.code) == (401, "UNAUTHORIZED"), resp.body
    assert len(upstream.seen) == before


async def test_server_header_names_no_versions(
    gw: RunningGateway, upstream: Upstream, tokens: Tokens
) -> None:
    relayed = await exchange(gw.proxy_port, request_bytes("GET", "/public/x"))
    refused_ = await exchange(gw.proxy_port, request_bytes("GET", "/admin/x"))
    unparsable = await exchange(gw.proxy_port, b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
    for resp in (relayed, refused_, unparsable):
        assert resp.headers.get("server") == "gateway", resp.headers

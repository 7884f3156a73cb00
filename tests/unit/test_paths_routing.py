"""Path normalization and route matching."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import Route
from gateway.core.errors import InvalidPath, MethodNotAllowed, RouteNotFound
from gateway.pipeline.paths import _normalize_general, normalize
from gateway.pipeline.routing import Router


@pytest.mark.parametrize(
    "raw",
    [
        "/public/../admin",
        "/public/./admin",
        "/admin%2Fx",
        "/admin%2fx",
        "/%2e%2e/admin",
        "/%2E/admin",
        "//admin",
        "/a//b",
        "/admin;x=y",
        "/admin%3Bx",
        "/admin%23x",
        "/admin%5Cx",
        "/admin\\x",
        "/admin%00",
        "/admin%0d%0a",
        "/admin%zz",
        "/admin%",
        "/admin%ff",
        "/admin%252e",
        "admin",
    ],
)
def test_ambiguous_paths_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPath):
        normalize(raw)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/%41", "/a/A"),
        ("/a/b/", "/a/b/"),
        ("/a/%7Euser", "/a/~user"),
        ("/a/caf%C3%A9", "/a/caf%C3%A9"),
        ("/a/x:y@z", "/a/x:y@z"),
        ("/a/sp%20ace", "/a/sp%20ace"),
    ],
)
def test_canonical_form(raw: str, canonical: str) -> None:
    assert normalize(raw).path == canonical
    # canonical form is a fixed point: forwarding it and normalizing again changes nothing
    assert normalize(canonical).path == canonical


def _r(name: str, path: str, methods: list[str] | None = None) -> Route:
    return Route(
        name=name, path=path, methods=frozenset(methods) if methods else None, upstream="u"
    )


def _match(router: Router, method: str, path: str) -> str:
    return router.match(method, normalize(path).segments).route.name


def test_most_specific_route_wins_regardless_of_order() -> None:
    router = Router(
        [
            _r("glob", "/api/**"),
            _r("param", "/api/items/{id}"),
            _r("literal", "/api/items/special"),
            _r("root", "/"),
        ]
    )
    assert _match(router, "GET", "/api/items/special") == "literal"
    assert _match(router, "GET", "/api/items/42") == "param"
    assert _match(router, "GET", "/api/items/42/sub") == "glob"
    assert _match(router, "GET", "/api") == "glob"
    assert _match(router, "GET", "/") == "root"
    assert router.match("GET", ("api", "items", "42")).params == {"id": "42"}


def test_backtracks_from_literal_to_param() -> None:
    router = Router([_r("lit", "/a/b/c"), _r("param", "/a/{x}/d")])
    assert _match(router, "GET", "/a/b/d") == "param"


def test_method_selects_among_same_path() -> None:
    router = Router(
        [_r("read", "/items/**", ["GET"]), _r("write", "/items/**", ["POST", "DELETE"])]
    )
    assert _match(router, "GET", "/items/1") == "read"
    assert _match(router, "HEAD", "/items/1") == "read"
    assert _match(router, "DELETE", "/items/1") == "write"
    with pytest.raises(MethodNotAllowed) as exc:
        _match(router, "PUT", "/items/1")
    assert exc.value.headers["Allow"] == "DELETE, GET, POST"


def test_no_route_is_404_and_case_and_trailing_slash_are_exact() -> None:
    router = Router([_r("admin", "/admin")])
    for path in ("/ADMIN", "/admin/", "/admin/x", "/other"):
        with pytest.raises(RouteNotFound):
            _match(router, "GET", path)
    assert _match(router, "GET", "/admin") == "admin"


# -- the fast path agrees with the general one ----------------------------------------------------

_PATH_CHARS = "/aZ09-._~!$&'()*+,=:@%2e;\\?#\x00\x85é "


def _outcome(fn: object, raw: str) -> object:
    try:
        result = fn(raw)  # type: ignore[operator]
    except InvalidPath as exc:
        return ("refused", exc.reason)
    return (result.path, result.segments)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=_PATH_CHARS, max_size=40).map(lambda s: "/" + s))
def test_plain_path_fast_path_matches_the_general_normalizer(raw: str) -> None:
    # normalize() answers common paths with one regex; it must never differ from the general
    # algorithm — same canonical path and segments, or the same refusal.
    assert _outcome(normalize, raw) == _outcome(_normalize_general, raw)


@pytest.mark.parametrize(
    "raw", ["/api/small", "/a/b/", "/.well-known/x", "/a/.../b", "/a/./b", "/a/..", "/a//b"]
)
def test_fast_path_examples_match(raw: str) -> None:
    assert _outcome(normalize, raw) == _outcome(_normalize_general, raw)


@pytest.mark.parametrize("method", ["TRACE", "CONNECT"])
def test_trace_and_connect_only_where_a_route_names_them(method: str) -> None:
    router = Router([_r("any", "/open/**"), _r("named", "/diag/**", [method, "GET"])])
    with pytest.raises(MethodNotAllowed) as refused:
        _match(router, method, "/open/x")
    allowed = set(refused.value.headers["Allow"].split(", "))
    assert "GET" in allowed and method not in allowed
    assert _match(router, "GET", "/open/x") == "any"
    assert _match(router, method, "/diag/x") == "named"

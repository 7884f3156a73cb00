"""The forwarder's header verdicts (gateway.edge.headerpolicy) and the new edge config keys."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.config import ConfigError, load_text
from gateway.edge.headerpolicy import (
    CLIENT_ADDRESS,
    CREDENTIAL,
    DROP,
    KEEP,
    METHOD_OVERRIDE,
    HeaderPolicy,
    credential_cookies,
    is_method_param,
)
from gateway.edge.headerpolicy import (
    COOKIE as COOKIE_VERDICT,
)
from gateway.forward.body import strip_form_method, strip_method_param

BASE = """
upstreams:
  api: {url: "http://127.0.0.1:9000", max_connections: 8}
workspace: {source: header, header: X-Workspace-Id}
sessions: {algorithms: [HS256], issuer: iss, secret: "0123456789abcdef0123456789abcdef", cookie: sb-access-token}
dashboard: {secret: "0123456789abcdef0123456789abcdef"}
limits: {body_read_timeout: 2.5}
routes:
  - {name: all, path: /**, method_override: true, methods: [GET, POST, TRACE]}
"""


@pytest.fixture
def policy() -> HeaderPolicy:
    cfg = load_text(BASE)
    return HeaderPolicy(cfg, ["Authorization", "X-Api-Key"], credential_cookies(cfg))


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("accept", KEEP),
        ("x-custom_thing", KEEP),  # a `_` name the gateway neither owns nor reads
        ("x-workspace-id", KEEP),
        ("x_workspace_id", DROP),
        ("content_type", DROP),
        ("x-gateway-anything", DROP),
        ("x_gateway_anything", DROP),
        ("x-gateway-user-id", DROP),
        ("transfer_encoding", DROP),
        ("content_length", DROP),
        ("expect", DROP),
        ("x-original-url", DROP),
        ("authorization", CREDENTIAL),
        ("x-authorization", CREDENTIAL),
        ("x_api_key", DROP),
        ("x-client-ip", CLIENT_ADDRESS),
        ("x_client_ip", DROP),
        ("x-http-method-override", METHOD_OVERRIDE),
        ("x_http_method_override", DROP),
        ("cookie", COOKIE_VERDICT),
    ],
)
def test_verdicts(policy: HeaderPolicy, name: str, verdict: int) -> None:
    assert policy.verdict(name) == verdict
    assert policy.verdict(name) == verdict  # remembered, same answer


def test_credential_cookies_are_removed_and_others_kept(policy: HeaderPolicy) -> None:
    assert policy.strip_cookies("a=1; sb-access-token=eyJ.x.y; gw_dashboard=s; b=2") == "a=1; b=2"
    assert policy.strip_cookies("sb-access-token=eyJ.x.y") == ""
    assert policy.strip_cookies("session=jwt") == ""  # dashboard.session_jwt_cookie's default


def test_method_params_are_stripped_in_every_escaping() -> None:
    assert strip_method_param("a=1&_method=DELETE&%5Fmethod=PUT&%5fmethod=X&b=2") == "a=1&b=2"
    assert strip_method_param("methods=1&my_method=2") == "methods=1&my_method=2"
    assert strip_form_method(b"a=1&_method=DELETE&b=+2") == b"a=1&b=+2"


def test_edge_config_keys_are_read() -> None:
    cfg = load_text(BASE)
    assert cfg.upstreams["api"].max_connections == 8
    assert cfg.limits.body_read_timeout == 2.5
    assert cfg.routes[0].method_override is True
    assert cfg.routes[0].methods is not None and "TRACE" in cfg.routes[0].methods


@pytest.mark.parametrize(
    ("fragment", "key"),
    [
        (
            'upstreams:\n  api: {url: "http://127.0.0.1:9000", max_connections: 0}',
            "upstreams.api.max_connections",
        ),
        ("limits: {body_read_timeout: 0}", "limits.body_read_timeout"),
    ],
)
def test_bad_edge_config_names_the_key(fragment: str, key: str) -> None:
    text = BASE.replace('upstreams:\n  api: {url: "http://127.0.0.1:9000", max_connections: 8}', "")
    text = text.replace("limits: {body_read_timeout: 2.5}", "")
    if not fragment.startswith("upstreams"):
        text += 'upstreams:\n  api: {url: "http://127.0.0.1:9000"}\n'
    with pytest.raises(ConfigError) as err:
        load_text(text + fragment + "\n")
    assert key in str(err.value)


def test_the_session_jwt_cookie_is_a_credential_only_with_a_session_verifier() -> None:
    with_sessions = load_text(BASE)
    assert credential_cookies(with_sessions) == {"sb-access-token", "gw_dashboard", "session"}
    without = load_text("\n".join(ln for ln in BASE.splitlines() if not ln.startswith("sessions:")))
    assert credential_cookies(without) == {"gw_dashboard"}  # "session" is then the app's own


JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"


@pytest.mark.parametrize(
    "cookie",
    [
        f"theme=dark, sb-access-token={JWT}",  # `,` between pairs (RFC 2965 style)
        f"theme=dark,sb-access-token={JWT}",
        f"theme=dark sb-access-token={JWT}",  # a space only
        f"theme=dark\x0bsb-access-token={JWT}",
        f'theme="x; sb-access-token={JWT}"',  # inside a quoted value
        f"SB-ACCESS-TOKEN={JWT}",  # another case
        f"theme=dark; sb-access-token ={JWT}",
    ],
)
def test_a_credential_cookie_is_removed_in_every_spelling_a_parser_reads(
    policy: HeaderPolicy, cookie: str
) -> None:
    """Whatever separators the client uses, the session JWT never reaches the upstream: not in
    the gateway's own reading of the header (aiohttp) nor in a Python upstream's (SimpleCookie)."""
    kept = policy.strip_cookies(cookie)
    assert JWT not in kept
    assert "sb-access-token" not in kept.lower()
    parsed: SimpleCookie = SimpleCookie()
    parsed.load(kept)
    assert "sb-access-token" not in parsed
    assert (
        "sb-access-token" not in make_mocked_request("GET", "/", headers={"Cookie": kept}).cookies
    )


def test_ordinary_cookies_survive_stripping(policy: HeaderPolicy) -> None:
    assert policy.strip_cookies("theme=dark; lang=en") == "theme=dark; lang=en"
    assert policy.strip_cookies('theme="a,b"; sb-access-token=x; lang=en') == 'theme="a,b"; lang=en'


@pytest.mark.parametrize(
    ("name", "is_override"),
    [
        ("_method", True),
        (".method", True),  # PHP: `.` and ` ` read as `_`
        (" .method", True),  # PHP drops leading spaces first
        ("_method[]", True),  # the same field as an array
        ("[method", True),  # PHP: an unclosed `[` read as `_`
        ("method", False),
        ("__method", False),
        ("_METHOD", False),  # Rack and PHP compare names exactly
        ("x_method", False),
    ],
)
def test_method_param_names_as_frameworks_read_them(name: str, is_override: bool) -> None:
    assert is_method_param(name) is is_override

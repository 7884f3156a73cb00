"""Config loading: typed values, every problem reported with file, key path and value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, TracingConfig, load, load_text

MINIMAL = """
upstreams:
  api: http://127.0.0.1:9000
routes:
  - name: all
    path: /**
"""


def test_minimal_config_has_safe_defaults() -> None:
    cfg = load_text(MINIMAL)
    assert cfg.proxy.port == 8080
    assert cfg.routes[0].upstream == "api"
    assert not cfg.routes[0].public
    assert cfg.store.startswith("sqlite:///")
    assert cfg.scopes.superuser == "admin:all"


def test_all_problems_reported_at_once_with_path_and_value() -> None:
    text = """
listeners:
  proxy: "127.0.0.1:notaport"
upstreams:
  api: {url: "ftp://nope"}
routes:
  - name: r1
    path: /a/**
    upstream: missing
    bogus_key: 1
  - name: r2
    path: "/b/**/c"
    public: "maybe"
cache:
  size: -1
"""
    with pytest.raises(ConfigError) as exc:
        load_text(text, "test.yaml")
    rendered = str(exc.value)
    expected = [
        ("listeners.proxy", "'127.0.0.1:notaport'"),
        ("upstreams.api.url", "'ftp://nope'"),
        ("routes[0].upstream", "'missing'"),
        ("routes[0].bogus_key", "unknown key"),
        ("routes[1].path", "'/b/**/c'"),
        ("routes[1].public", "'maybe'"),
        ("cache.size", "-1"),
    ]
    for path, value in expected:
        line = next((ln for ln in rendered.splitlines() if f"test.yaml: {path}:" in ln), None)
        assert line is not None, f"no problem reported for {path}:\n{rendered}"
        assert value in line
    assert len(exc.value.problems) >= len(expected)


def test_env_interpolation_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TEST_PORT", "9999")
    monkeypatch.delenv("GW_TEST_UNSET", raising=False)
    text = """
listeners:
  proxy: "127.0.0.1:${GW_TEST_PORT:-8080}"
  admin: "127.0.0.1:${GW_TEST_UNSET:-8181}"
upstreams:
  api: "${GW_TEST_UNSET:-http://127.0.0.1:9000}"
routes: [{name: a, path: /x}]
"""
    cfg = load_text(text)
    assert cfg.proxy.port == 9999
    assert cfg.admin is not None and cfg.admin.port == 8181
    assert cfg.upstreams["api"].url == "http://127.0.0.1:9000"


def test_unset_variable_without_default_names_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GW_TEST_UNSET", raising=False)
    with pytest.raises(
        ConfigError, match=r"upstreams\.api: environment variable GW_TEST_UNSET is not set"
    ):
        load_text("upstreams:\n  api: ${GW_TEST_UNSET}\nroutes: []\n")


def test_env_value_cannot_inject_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TEST_EVIL", "x\npublic: true")
    cfg = load_text(
        "upstreams: {api: 'http://127.0.0.1:1'}\nroutes: [{name: '${GW_TEST_EVIL}', path: /a}]\n"
    )
    assert cfg.routes[0].name == "x\npublic: true"
    assert cfg.routes[0].public is False


def test_unknown_scope_and_overlapping_prefixes_are_errors() -> None:
    text = """
token_types:
  - {prefix: sk_}
  - {prefix: sk_live_}
scopes: {known: [a:read]}
upstreams: {api: 'http://127.0.0.1:1'}
routes: [{name: a, path: /a, scopes: [a:write]}]
"""
    with pytest.raises(ConfigError) as exc:
        load_text(text)
    msg = str(exc.value)
    assert "token_types[1].prefix: overlaps" in msg
    assert "routes[0].scopes: names a scope not in scopes.known (got 'a:write')" in msg


def test_shadowed_route_is_a_warning() -> None:
    cfg = load_text(
        "upstreams: {api: 'http://127.0.0.1:1'}\n"
        "routes:\n  - {name: a, path: /x, methods: [GET]}\n  - {name: b, path: /x, methods: [GET, POST]}\n"
    )
    assert any("shadowed by routes[0]" in w.message for w in cfg.warnings)


def test_scope_implications_are_closed_transitively() -> None:
    cfg = load_text(
        "upstreams: {api: 'http://127.0.0.1:1'}\nroutes: []\n"
        "scopes: {implies: {a:admin: [a:write], a:write: [a:read]}}\n"
    )
    assert cfg.scopes.expand(frozenset({"a:admin"})) == {"a:admin", "a:write", "a:read"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_gateway_check_reports_every_error_and_exits_nonzero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "upstreams: {api: 'nope'}\nroutes: [{name: a, path: /a, upstream: zzz}]\nwat: 1\n"
    )
    out = _cli("--config", str(bad), "check", cwd=tmp_path)
    assert out.returncode == 1
    assert f"{bad}: upstreams.api.url" in out.stderr
    assert f"{bad}: routes[0].upstream: names an unknown upstream (got 'zzz')" in out.stderr
    assert f"{bad}: wat: unknown key" in out.stderr


def test_gateway_check_passes_on_the_default_config() -> None:
    root = Path(__file__).resolve().parents[2]
    out = _cli("--config", str(root / "gateway.yaml"), "check", cwd=root)
    assert out.returncode == 0, out.stderr
    assert "OK" in out.stdout


def test_load_names_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load(tmp_path / "missing.yaml")


def test_limits_are_read_and_bad_values_name_key_and_value() -> None:
    cfg = load_text(MINIMAL + "limits: {max_body_bytes: 1024, request_timeout: 2.5}\n")
    assert cfg.limits.max_body_bytes == 1024 and cfg.limits.request_timeout == 2.5
    assert cfg.limits.max_connections == 10000  # the default stays
    with pytest.raises(ConfigError) as err:
        load_text(MINIMAL + "limits: {max_connections: -3, idle_timeout: soon, max_bodies: 1}\n")
    text = str(err.value)
    assert "limits.max_connections" in text and "-3" in text
    assert "limits.idle_timeout" in text and "soon" in text
    assert "max_bodies" in text


def test_dashboard_section_defaults_and_secret_fallback() -> None:
    assert load_text(MINIMAL).dashboard is None  # off unless configured
    cfg = load_text(MINIMAL + "pepper: pepper-of-at-least-16\ndashboard: {}\n")
    d = cfg.dashboard
    assert d is not None
    assert (d.path, d.listener, d.session_jwt_cookie) == ("/settings/api-keys", "proxy", "session")
    assert d.secret == "pepper-of-at-least-16"  # signing falls back to the pepper
    cfg = load_text(
        MINIMAL
        + "dashboard: {secret: a-dashboard-secret-xyz, public_url: 'https://app.example.com/'}\n"
    )
    assert cfg.dashboard is not None and cfg.dashboard.public_url == "https://app.example.com"


def test_dashboard_without_a_secret_is_off_with_a_warning() -> None:
    cfg = load_text(MINIMAL + "dashboard: {path: /settings/api-keys, secret: ''}\n", "g.yaml")
    assert cfg.dashboard is None
    assert any(w.path == "dashboard.secret" and "off until" in w.message for w in cfg.warnings), (
        cfg.warnings
    )


def test_dashboard_problems_name_key_and_value() -> None:
    text = (
        MINIMAL
        + """
token_types:
  - {name: oauth, prefix: oa_, kind: oauth_access}
dashboard:
  path: /settings/../keys
  listener: admin
  public_url: "ftp://x"
  session_ttl: 0
  session_jwt_cookie: "bad cookie"
  token_types: [nope, oauth]
  colour: blue
"""
    )
    with pytest.raises(ConfigError) as exc:
        load_text(text, "g.yaml")
    rendered = str(exc.value)
    for path, value in [
        ("dashboard.path", "'/settings/../keys'"),
        ("dashboard.listener", "is admin but listeners.admin is not set"),
        ("dashboard.public_url", "'ftp://x'"),
        ("dashboard.session_ttl", "0.0"),
        ("dashboard.session_jwt_cookie", "'bad cookie'"),
        ("dashboard.token_types", "'nope'"),
        ("dashboard.token_types", "OAuth access tokens"),
        ("dashboard.colour", "unknown key"),
    ]:
        line = next(
            (ln for ln in rendered.splitlines() if f"g.yaml: {path}:" in ln and value in ln), None
        )
        assert line is not None, (path, value, rendered)
    with pytest.raises(ConfigError, match="at least 16"):
        load_text(MINIMAL + "dashboard: {secret: short}\n")


# -- oauth: and sessions: (issue 5) ------------------------------------------------------------------

OAUTH_BASE = """
token_types:
  - {name: key, prefix: gw_}
  - {name: oauth, prefix: gwo_, kind: oauth_access}
upstreams: {api: "http://127.0.0.1:9000"}
routes: [{name: all, path: /api/**}]
"""


def test_oauth_section_defaults_to_velocitys_paths_as_public_builtin_routes() -> None:
    cfg = load_text(OAUTH_BASE + "oauth: {}\n")
    assert cfg.oauth is not None
    assert cfg.oauth.access_token_type == "oauth"
    assert (cfg.oauth.access_token_ttl, cfg.oauth.code_ttl) == (3600.0, 600.0)
    routes = {r.name: r for r in cfg.routes}
    assert routes["oauth-consent"].path == "/oauth/consent"
    assert routes["oauth-token"].path == "/api/oauth/token"
    assert routes["oauth-token"].methods == frozenset({"POST"}) and routes["oauth-token"].public
    assert routes["oauth-metadata"].path == "/.well-known/oauth-authorization-server"
    # a user's grants are not public and never accept OAuth tokens
    assert not routes["oauth-grants"].public
    assert routes["oauth-grants"].auth_methods == frozenset({"session", "token"})


def test_oauth_paths_and_durations_are_configurable() -> None:
    text = OAUTH_BASE + (
        "oauth: {paths: {consent: /authorize, token: /oauth/token}, code_ttl: 5m, "
        "access_token_ttl: 2h, refresh_reuse_grace: 10}\n"
    )
    cfg = load_text(text)
    assert cfg.oauth is not None
    assert (cfg.oauth.paths.consent, cfg.oauth.paths.token) == ("/authorize", "/oauth/token")
    assert (cfg.oauth.code_ttl, cfg.oauth.access_token_ttl) == (300, 7200)
    assert cfg.oauth.refresh_reuse_grace == 10.0


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ("oauth: {access_token_type: key}", "oauth.access_token_type"),
        ("oauth: {refresh_prefix: gw_r_}", "oauth.refresh_prefix"),
        ("oauth: {refresh_prefix: Bad}", "oauth.refresh_prefix"),
        ("oauth: {code_ttl: 1h}", "oauth.code_ttl"),
        ("oauth: {paths: {token: '/api/{x}'}}", "oauth.paths.token"),
        ("oauth: {issuer: 'ftp://x'}", "oauth.issuer"),
        ("oauth: {bogus: 1}", "oauth.bogus"),
        (
            "sessions: {issuer: i, algorithms: [none], secret: " + "x" * 40 + "}",
            "sessions.algorithms",
        ),
        ("sessions: {issuer: i, algorithms: [HS256]}", "sessions.secret"),
        ("sessions: {issuer: i, algorithms: [HS256], secret: short}", "sessions.secret"),
        ("sessions: {issuer: i, algorithms: [HS512], secret: " + "x" * 40 + "}", "sessions.secret"),
        ("sessions: {issuer: i, algorithms: [RS256]}", "sessions"),
        ("sessions: {algorithms: [RS256], jwks_file: /k.json}", "sessions.issuer"),
        (
            "sessions: {issuer: i, algorithms: [RS256], jwks_file: /k, jwks_url: 'http://x/k'}",
            "sessions.jwks_url",
        ),
        (
            "sessions: {issuer: i, algorithms: [RS256], jwks_file: /k, leeway: 600}",
            "sessions.leeway",
        ),
    ],
)
def test_oauth_and_sessions_problems_name_their_key(section: str, where: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_text(OAUTH_BASE + section + "\n", "g.yaml")
    assert f"g.yaml: {where}" in str(exc.value)
    assert "x" * 40 not in str(exc.value)  # a secret is never echoed


def test_oauth_needs_an_oauth_access_token_type() -> None:
    text = "upstreams: {api: 'http://127.0.0.1:9'}\nroutes: [{path: /a}]\noauth: {}\n"
    with pytest.raises(ConfigError) as exc:
        load_text(text, "g.yaml")
    assert "oauth.access_token_type" in str(exc.value)


# -- issue 8: store options and rate limits ---------------------------------------------------------


def test_store_as_a_mapping_with_outage_options() -> None:
    cfg = load_text(
        MINIMAL
        + """
store:
  url: postgresql://gw@db.internal/gateway?schema=edge
  outage_grace: 15
  connect_timeout: 1.5
"""
    )
    assert cfg.store == "postgresql://gw@db.internal/gateway?schema=edge"
    assert cfg.store_options.outage_grace == 15.0
    assert cfg.store_options.connect_timeout == 1.5
    assert cfg.store_options.query_timeout == 5.0  # default
    plain = load_text(MINIMAL + "store: sqlite:///x.db\n")
    assert plain.store == "sqlite:///x.db" and plain.store_options.outage_grace == 30.0


def test_store_lookup_timeout_and_probe_interval() -> None:
    cfg = load_text(
        MINIMAL + "store: {url: 'sqlite:///x.db', lookup_timeout: 0.2, probe_interval: 3}\n"
    )
    assert cfg.store_options.lookup_timeout == 0.2 and cfg.store_options.probe_interval == 3.0
    plain = load_text(MINIMAL + "store: sqlite:///x.db\n")
    assert plain.store_options.lookup_timeout == 0.5  # well under a second by default
    with pytest.raises(ConfigError) as exc:
        load_text(
            MINIMAL + "store: {url: 'sqlite:///x.db', lookup_timeout: 0, probe_interval: -1}\n"
        )
    rendered = str(exc.value)
    assert "store.lookup_timeout" in rendered and "store.probe_interval" in rendered


def test_store_problems_name_their_key() -> None:
    with pytest.raises(ConfigError) as exc:
        load_text(
            MINIMAL + "store: {url: 'mysql://x', outage_grace: -1, query_timeout: 0, pool: 3}\n",
            "s.yaml",
        )
    rendered = str(exc.value)
    for path, value in [
        ("store.url", "'mysql://x'"),
        ("store.outage_grace", "-1"),
        ("store.query_timeout", "0"),
        ("store.pool", "unknown key"),
    ]:
        assert any(path in line and value in line for line in rendered.splitlines()), (
            path,
            rendered,
        )


RATE_BASE = """
token_types:
  - {name: live, prefix: gw_live_}
upstreams:
  api: http://127.0.0.1:9000
routes:
  - {name: items, path: /items/**}
"""


def test_rate_limits_are_read_with_defaults() -> None:
    cfg = load_text(
        RATE_BASE
        + """
rate_limits:
  redis: redis://127.0.0.1:6379/0
  on_redis_error: fail_open
  rules:
    - {name: t, limit: 100, window: 60}
    - {name: wr, per: [workspace, route], limit: 10, window: 1, routes: [items], token_types: [live]}
  failed_auth: {limit: 20}
"""
    )
    rl = cfg.rate_limits
    assert rl.redis == "redis://127.0.0.1:6379/0" and rl.on_redis_error == "fail_open"
    assert rl.rules[0].per == ("token",) and rl.rules[0].limit == 100
    assert rl.rules[1].per == ("workspace", "route") and rl.rules[1].routes == {"items"}
    assert rl.failed_auth is not None
    assert rl.failed_auth.per == ("address",) and rl.failed_auth.window == 60.0
    assert load_text(RATE_BASE).rate_limits.rules == ()
    assert load_text(RATE_BASE).rate_limits.on_redis_error == "fail_closed"  # deny by default


def test_rate_limit_problems_name_their_key() -> None:
    text = (
        RATE_BASE
        + """
rate_limits:
  redis: http://not-redis
  on_redis_error: maybe
  rules:
    - {name: a, limit: 0}
    - {name: b, limit: 5, window: -1, per: [planet]}
    - {name: c, limit: 5, routes: [nope], token_types: [ghost]}
    - {name: c, limit: 5}
"""
    )
    with pytest.raises(ConfigError) as exc:
        load_text(text, "r.yaml")
    rendered = str(exc.value)
    for path, value in [
        ("rate_limits.redis", "'http://not-redis'"),
        ("rate_limits.on_redis_error", "'maybe'"),
        ("rate_limits.rules[0].limit", "0"),
        ("rate_limits.rules[1].window", "-1"),
        ("rate_limits.rules[1].per", "'planet'"),
        ("rate_limits.rules[2].routes", "'nope'"),
        ("rate_limits.rules[2].token_types", "'ghost'"),
        ("rate_limits.rules[3].name", "'c'"),
    ]:
        assert any(path in line and value in line for line in rendered.splitlines()), (
            path,
            rendered,
        )


def test_token_type_routes_must_name_a_route_or_a_tag() -> None:
    """Issue 17 §2: a token type limited to routes (browser keys) names them by name or tag."""
    text = MINIMAL.replace("    path: /**\n", "    path: /**\n    tags: [browser]\n") + (
        "token_types:\n"
        "  - {name: key, prefix: k_, kind: api_key, routes: [browser, all]}\n"
        "  - {name: web, prefix: w_, kind: api_key, routes: [nowhere],"
        " require_allowed_domains: true}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_text(text)
    assert "token_types[1].routes: names no route and no route tag (got 'nowhere')" in str(
        err.value
    )
    cfg = load_text(text.replace("routes: [nowhere]", "routes: [browser]"))
    web = cfg.token_type("web")
    assert web is not None and web.routes == {"browser"} and web.require_allowed_domains
    assert cfg.routes[0].tags == {"browser"}


def test_certificate_token_type_needs_a_listener_asking_for_certificates() -> None:
    """Issue 22: a client_certificate type with nothing asking clients for a certificate, or
    also given a header to read, is a mistake the config names."""
    text = (
        "store: sqlite:///x.db\n"
        "upstreams: {api: 'http://127.0.0.1:1'}\n"
        "token_types:\n"
        "  - {name: cert, prefix: mtls_, client_certificate: true, credential: {header: X-C}}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_text(text)
    problems = str(err.value)
    assert "token_types: a client_certificate type needs listeners.proxy.tls" in problems
    assert "token_types[0].credential: a client_certificate type is not read from a header" in (
        problems
    )


def test_external_auth_defaults_and_problems() -> None:
    cfg = load_text(MINIMAL + "trusted_proxies: [10.0.0.0/8]\nexternal_auth: {}\n")
    assert cfg.external_auth is not None
    assert (cfg.external_auth.path, cfg.external_auth.listener) == ("/_gateway/authz", None)
    assert cfg.external_auth.cache_seconds == 1 and not cfg.warnings
    with pytest.raises(ConfigError) as exc:
        load_text(
            MINIMAL
            + "trusted_proxies: [10.0.0.0/8]\n"
            + "external_auth: {path: authz, cache_seconds: 5, listener: 'x:y', extra: 1}\n",
            "g.yaml",
        )
    text = str(exc.value)
    assert "g.yaml: external_auth.path: must be an absolute path" in text and "'authz'" in text
    assert "external_auth.cache_seconds: must be 0 or 1 (got 5)" in text
    assert "external_auth.listener: must be HOST:PORT" in text
    assert "external_auth.extra: unknown key" in text
    # Without trusted proxies every decision request would be refused: say so at load.
    cfg = load_text(MINIMAL + "external_auth: {listener: '127.0.0.1:8082'}\n")
    assert any(w.path == "external_auth" and "trusted_proxies" in w.message for w in cfg.warnings)


def test_tracing_is_off_without_its_section_and_checked_with_it() -> None:
    base = """
token_types: [{name: live, prefix: gw_live_, kind: api_key}]
upstreams: {api: "http://127.0.0.1:9000"}
routes: [{name: r, path: /x, upstream: api}]
"""
    assert load_text(base).tracing is None
    cfg = load_text(base + 'tracing: {endpoint: "http://127.0.0.1:4318/v1/traces"}')
    assert cfg.tracing == TracingConfig("http://127.0.0.1:4318/v1/traces")
    with pytest.raises(ConfigError) as err:
        load_text(base + "tracing: {endpoint: collector, sampling_ratio: 2, colour: red}")
    text = str(err.value)
    assert "tracing.endpoint: must be an http:// or https:// URL (got 'collector')" in text
    assert "tracing.sampling_ratio: must be between 0 and 1 (got 2.0)" in text
    assert "tracing.colour: unknown key" in text


# -- issue 20: the pydantic model keeps reporting everything at once ------------------------------


def test_a_refused_entry_leaves_the_others_checked_under_their_own_numbers() -> None:
    """routes[0] and rate_limits.rules[0] are refused outright (a key missing); the checks across
    sections still run on the rest and name them by their place in the file."""
    text = """
upstreams: {api: "http://127.0.0.1:9000", other: "http://127.0.0.1:9001"}
routes:
  - {name: nopath}
  - {name: fine, path: /a/**, upstream: api}
  - {name: bad, path: /b/**, upstream: ghost, public: maybe}
rate_limits:
  rules:
    - {name: nolimit}
    - {name: r, limit: 5, routes: [nowhere]}
"""
    with pytest.raises(ConfigError) as exc:
        load_text(text, "g.yaml")
    lines = str(exc.value).splitlines()
    for expected in [
        "error: g.yaml: routes[0].path: is required",
        "error: g.yaml: routes[2].public: must be true or false (got 'maybe')",
        "error: g.yaml: routes[2].upstream: names an unknown upstream (got 'ghost')",
        "error: g.yaml: rate_limits.rules[0].limit: is required",
        "error: g.yaml: rate_limits.rules[1].routes: names an unknown route (got 'nowhere')",
    ]:
        assert expected in lines, (expected, lines)


def test_durations_share_one_parser_with_the_management_api() -> None:
    from gateway.core.durations import parse_duration

    cfg = load_text(
        MINIMAL + "oauth: {refresh_token_ttl: 2w, code_ttl: 5m}\n"
        "token_types: [{prefix: gw_}, {name: o, prefix: gwo_, kind: oauth_access}]\n"
    )
    assert cfg.oauth is not None
    assert cfg.oauth.refresh_token_ttl == parse_duration("2w") == 14 * 86400
    assert cfg.oauth.code_ttl == parse_duration("5m")

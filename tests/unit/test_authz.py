"""gateway.pipeline.authz alone: the decision every door asks, on plain values (no store, no HTTP)."""

from __future__ import annotations

import pytest

from gateway.config import CredentialSource, Route, ScopeRules, TokenType
from gateway.core.errors import InsufficientScope, PermissionDenied
from gateway.core.identity import Identity, Principal
from gateway.pipeline.authz import (
    authorize,
    bound,
    bound_expiry,
    covers,
    missing,
    require_outlived,
    type_allows_route,
)
from gateway.store.base import TokenRecord, Workspace

RULES = ScopeRules(
    known=frozenset({"a:read", "a:write", "b:read", "tokens:read", "tokens:write", "admin:all"}),
    superuser="admin:all",
    implies={"a:write": frozenset({"a:read"}), "tokens:write": frozenset({"tokens:read"})},
)
WS = Workspace(id="ws_1", slug="one", name="One", plan="free", created_at=0.0)


def who(*scopes: str, tt: TokenType | None = None) -> Identity:
    return Identity(Principal("token", token_type=tt), WS, RULES.expand(frozenset(scopes)))


def test_bound_gives_the_callers_own_scopes_when_nothing_is_asked() -> None:
    caller = who("a:write", "tokens:write")
    assert bound(RULES, caller, None) == caller.scopes


def test_bound_refuses_more_naming_what_is_missing_implied_scopes_included() -> None:
    with pytest.raises(InsufficientScope) as err:
        bound(RULES, who("a:read", "tokens:write"), frozenset({"a:write", "b:read"}))
    assert err.value.required == ("a:write", "b:read")
    assert err.value.status == 403 and err.value.code == "FORBIDDEN"
    assert "a:write b:read" in err.value.message


def test_the_superuser_scope_covers_everything_and_only_it_grants_itself() -> None:
    root = who("admin:all")
    assert bound(RULES, root, frozenset({"b:read", "admin:all"})) == {"b:read", "admin:all"}
    assert missing(RULES, who("a:write", "b:read").scopes, {"admin:all"}) == ["admin:all"]
    assert covers(RULES, root, frozenset({"a:write", "tokens:write"}))


def test_covers_compares_powers() -> None:
    assert covers(RULES, who("a:write"), RULES.expand(frozenset({"a:write"})))
    assert not covers(RULES, who("a:read"), RULES.expand(frozenset({"a:write"})))


def test_authorize_checks_scopes_and_the_types_routes() -> None:
    browser = TokenType(
        "web", "w_", "api_key", "live", CredentialSource("x-key", None), routes=frozenset({"sdk"})
    )
    sdk = Route(name="v1", path="/v1/**", tags=frozenset({"sdk"}))
    rest = Route(name="v2", path="/v2/**")
    assert type_allows_route(browser, sdk) and not type_allows_route(browser, rest)
    assert type_allows_route(None, rest)
    authorize(RULES, who(tt=browser), route=sdk)
    with pytest.raises(PermissionDenied) as err:
        authorize(RULES, who("admin:all", tt=browser), route=rest)  # scopes do not help
    assert not isinstance(err.value, InsufficientScope)
    with pytest.raises(InsufficientScope):
        authorize(RULES, who("a:read"), all_of=["tokens:read"])
    authorize(RULES, who("tokens:write"), all_of=["tokens:read"])  # implied


def expiring(at: float | None) -> Identity:
    t = TokenRecord(
        "tok_1", "t", "api_key", "k_", "live", "k_x", frozenset(), "ws_1", None, 0.0, at
    )
    return Identity(Principal("token", token=t), WS, RULES.expand(frozenset({"tokens:write"})))


def test_a_new_credential_dies_no_later_than_the_token_that_made_it() -> None:
    assert bound_expiry(expiring(100.0), None) == 100.0  # asked for nothing: the caller's
    assert bound_expiry(expiring(100.0), 50.0) == 50.0
    with pytest.raises(PermissionDenied) as err:
        bound_expiry(expiring(100.0), 101.0)
    assert err.value.status == 403 and err.value.reason == "outlives_caller"
    assert bound_expiry(expiring(None), None) is None  # a key that never expires bounds nothing
    assert bound_expiry(who("tokens:write"), 5.0) == 5.0  # a session: no token, no bound


def test_rotating_hands_over_a_secret_so_the_target_must_die_first() -> None:
    require_outlived(expiring(100.0), 90.0)
    require_outlived(expiring(None), None)
    for later in (None, 101.0):
        with pytest.raises(PermissionDenied):
            require_outlived(expiring(100.0), later)

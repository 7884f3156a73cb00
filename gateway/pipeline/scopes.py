"""The scope step: the route's required scopes against the identity's scopes in force."""

from __future__ import annotations

from gateway.config import Route, ScopeRules
from gateway.errors import InsufficientScope
from gateway.identity import Identity

__all__ = ["check_scopes", "has_scope"]


def has_scope(rules: ScopeRules, granted: frozenset[str], scope: str) -> bool:
    """``granted`` (already expanded with implications) allows ``scope``."""
    return scope in granted or (rules.superuser is not None and rules.superuser in granted)


def check_scopes(rules: ScopeRules, route: Route, identity: Identity) -> None:
    granted = identity.scopes
    if route.scopes_all and not all(has_scope(rules, granted, s) for s in route.scopes_all):
        raise InsufficientScope(route.scopes_all, all_of=True)
    if route.scopes_any and not any(has_scope(rules, granted, s) for s in route.scopes_any):
        raise InsufficientScope(route.scopes_any, all_of=False)

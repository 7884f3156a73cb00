"""Building the runtime form of the sections on who is calling (``token_types``, ``scopes``), and
the rules that tie them to other sections: prefixes that overlap, scopes not in ``scopes.known``,
a token type's ``routes`` naming no route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.config.document import Document
from gateway.config.problems import Report
from gateway.config.runtime_auth import CredentialSource, ScopeRules, TokenType
from gateway.config.runtime_routing import Route

__all__ = ["build_scopes", "build_token_types", "check_scope_references", "check_type_routes"]


def build_token_types(
    doc: Document, place: Callable[[int], int], error: Report
) -> tuple[TokenType, ...]:
    out: list[TokenType] = []
    seen: dict[str, str] = {}
    for i, t in enumerate(doc.token_types):
        path = f"token_types[{place(i)}]"
        for other in seen:
            if t.prefix.startswith(other) or other.startswith(t.prefix):
                error(f"{path}.prefix", f"overlaps the prefix of {seen[other]}", t.prefix)
        seen[t.prefix] = path
        out.append(
            TokenType(
                name=t.name or t.prefix,
                prefix=t.prefix,
                kind=t.kind,
                environment=t.environment,
                credential=CredentialSource(t.credential.header, t.credential.resolved_scheme()),
                inherit_user_permissions=t.inherit_user_permissions,
                plans=frozenset(t.plans),
                routes=frozenset(t.routes),
                require_allowed_domains=t.require_allowed_domains,
                client_certificate=t.client_certificate,
            )
        )
    return tuple(out)


def _closure(implies: Mapping[str, list[str]]) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for start in implies:
        seen: set[str] = set()
        stack = list(implies[start])
        while stack:
            s = stack.pop()
            if s not in seen:
                seen.add(s)
                stack.extend(implies.get(s, ()))
        out[start] = frozenset(seen)
    return out


def build_scopes(doc: Document) -> ScopeRules:
    s = doc.scopes
    return ScopeRules(
        known=frozenset(s.known), superuser=s.superuser or None, implies=_closure(s.implies)
    )


def check_scope_references(
    routes: tuple[Route, ...],
    rules: ScopeRules,
    roles: Mapping[str, frozenset[str]],
    error: Report,
) -> None:
    if not rules.known:
        return
    valid = rules.known | ({rules.superuser} if rules.superuser else set())
    for route in routes:
        for s in (*route.scopes_any, *route.scopes_all):
            if s not in valid:
                error(f"routes[{route.index}].scopes", "names a scope not in scopes.known", s)
    for role, scopes in roles.items():
        for s in scopes:
            if s not in valid:
                error(f"roles.{role}", "names a scope not in scopes.known", s)


def check_type_routes(
    token_types: tuple[TokenType, ...],
    place: Callable[[int], int],
    routes: tuple[Route, ...],
    error: Report,
) -> None:
    """Every name in ``token_types[].routes`` must be a route's name or one of its tags."""
    known = {rt.name for rt in routes} | {t for rt in routes for t in rt.tags}
    for i, tt in enumerate(token_types):
        for name in sorted(tt.routes - known):
            error(f"token_types[{place(i)}].routes", "names no route and no route tag", name)

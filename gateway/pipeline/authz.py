"""The one authorization decision every door asks: may this principal do this, here.

The proxy pipeline's scope step, the self-service token endpoints, the admin API, the dashboard,
the Velt key endpoint, the OAuth app and grant endpoints and the CLI acting for a user all call the
functions below; none of them decides on its own. What they own:

* :class:`Powers` — what a credential (or a user) can do in a workspace *right now*. It is computed
  by the pipeline's own workspace step (:meth:`WorkspaceResolver.bind`, hence
  :func:`~gateway.pipeline.workspace.effective_scopes`), never a second way, so a listing shows
  exactly what a stored token would be allowed at the next request.
* :func:`authorize` — do the caller's scopes in force allow an action (a route's scopes, or
  ``tokens:read`` / ``tokens:write`` for managing credentials), and may the caller's token type be
  used on this route at all (``token_types[].routes``: browser keys only on browser routes)?
* :func:`bound` — the scopes a new or rotated credential may hold: a subset of its creator's.
  Asking for more is 403 ``FORBIDDEN`` naming what is missing; asking for nothing gives the
  creator's own scopes, never more. :func:`bound_expiry` does the same for its lifetime and
  :func:`require_environment` for its environment (a ``test`` key mints no ``live`` one).
* :func:`covers` — whether the caller's power includes another credential's, which listing,
  revoking, deleting and rotating that credential require.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.config import Config, Route, ScopeRules, TokenType
from gateway.core.errors import InsufficientScope, PermissionDenied, WorkspaceDenied
from gateway.core.identity import Identity, Principal
from gateway.pipeline.authn import principal_for
from gateway.pipeline.workspace import WorkspaceResolver, effective_scopes
from gateway.store.base import Store, TokenRecord, Workspace
from gateway.store.cache import AuthCache

__all__ = [
    "TOKENS_READ",
    "TOKENS_WRITE",
    "Powers",
    "authorize",
    "authorize_route",
    "bound",
    "bound_expiry",
    "covers",
    "missing",
    "permits",
    "require_covers",
    "require_environment",
    "require_outlived",
    "same_environment",
    "type_allows_route",
]

# Managing credentials (create, rotate, revoke, list; OAuth apps and grants) needs one of these,
# held like any other scope: through a role, a token's scopes, an OAuth grant, or the superuser
# scope, which implies both. ``tokens:write`` should imply ``tokens:read`` in a config's implies.
TOKENS_READ = "tokens:read"
TOKENS_WRITE = "tokens:write"


def permits(rules: ScopeRules, granted: frozenset[str], scope: str) -> bool:
    """``granted`` (already expanded with implications) allows ``scope``."""
    return scope in granted or (rules.superuser is not None and rules.superuser in granted)


def missing(rules: ScopeRules, granted: frozenset[str], wanted: Iterable[str]) -> list[str]:
    """The scopes of ``wanted`` (and what they imply) that ``granted`` does not allow, sorted."""
    return sorted(s for s in rules.expand(frozenset(wanted)) if not permits(rules, granted, s))


def type_allows_route(tt: TokenType | None, route: Route) -> bool:
    """A token type with ``routes`` may only be used on routes it names (by name or tag)."""
    if tt is None or not tt.routes:
        return True
    return route.name in tt.routes or bool(tt.routes & route.tags)


def authorize(
    rules: ScopeRules,
    identity: Identity,
    *,
    all_of: Iterable[str] = (),
    any_of: Iterable[str] = (),
    route: Route | None = None,
) -> None:
    """Raise unless ``identity`` may do an action needing ``all_of`` and one of ``any_of``
    (on ``route``, when the action is a route)."""
    if route is not None and not type_allows_route(identity.principal.token_type, route):
        tt = identity.principal.token_type
        raise PermissionDenied(
            f"{tt.name if tt else 'This'} credentials may not be used on this endpoint.",
            reason="type_route",
        )
    granted = identity.scopes
    needed_all, needed_any = tuple(all_of), tuple(any_of)
    if needed_all and not all(permits(rules, granted, s) for s in needed_all):
        raise InsufficientScope(needed_all, all_of=True)
    if needed_any and not any(permits(rules, granted, s) for s in needed_any):
        raise InsufficientScope(needed_any, all_of=False)


def authorize_route(rules: ScopeRules, route: Route, identity: Identity) -> None:
    """The pipeline's scope step: the route's required scopes and allowed token types."""
    authorize(rules, identity, all_of=route.scopes_all, any_of=route.scopes_any, route=route)


def bound(rules: ScopeRules, caller: Identity, requested: frozenset[str] | None) -> frozenset[str]:
    """The scopes a credential created (or re-keyed) by ``caller`` may hold.

    ``None`` (asked for nothing) gives the caller's own scopes in force; an explicit set must be
    within them, else 403 naming the scopes the caller lacks.
    """
    if requested is None:
        return caller.scopes
    _refuse_beyond(rules, caller, requested, "The new credential would hold")
    return requested


def bound_expiry(caller: Identity, requested: float | None) -> float | None:
    """When a credential created by ``caller`` may expire: no later than the caller's own token.

    Lifetime is power too: an app's one-hour OAuth token must not mint a PAT that outlives the
    app's grant. ``None`` (asked for no expiry) gives the caller's expiry; a later one is 403.
    A caller without an expiring token (a user's session, a non-expiring key) bounds nothing.
    """
    token = caller.principal.token
    limit = token.expires_at if token is not None else None
    if limit is None:
        return requested
    if requested is None:
        return limit
    if requested > limit:
        raise PermissionDenied(
            "The new credential would outlive the credential that asked for it "
            "(ask for an earlier expiry, or none to get the caller's).",
            reason="outlives_caller",
        )
    return requested


def same_environment(caller: Identity, environment: str) -> bool:
    """A token caller acts only on credentials of its own environment: a ``test`` key reaches the
    sandbox, so it neither mints nor touches ``live`` ones. Users (sessions) choose freely."""
    return caller.principal.token is None or caller.environment == environment


def require_environment(caller: Identity, environment: str) -> None:
    """403 unless :func:`same_environment`."""
    if not same_environment(caller, environment):
        raise PermissionDenied(
            f"A {caller.environment} credential may not create or manage {environment} ones.",
            reason="environment",
        )


def require_outlived(caller: Identity, expires_at: float | None) -> None:
    """403 unless a credential expiring at ``expires_at`` dies no later than the caller's token:
    re-keying one (rotation hands the caller its new secret) is minting it again."""
    token = caller.principal.token
    limit = token.expires_at if token is not None else None
    if limit is not None and (expires_at is None or expires_at > limit):
        raise PermissionDenied(
            "That token outlives the credential that asked: its new secret would too.",
            reason="outlives_caller",
        )


def covers(rules: ScopeRules, caller: Identity, power: frozenset[str]) -> bool:
    """``caller`` holds every scope of ``power`` (another credential's scopes in force)."""
    return not missing(rules, caller.scopes, power)


def require_covers(
    rules: ScopeRules, caller: Identity, power: frozenset[str], what: str = "token"
) -> None:
    """403 naming the scopes of ``power`` the caller lacks: touching (revoking, rotating,
    reading) a more powerful credential is refused like minting one."""
    _refuse_beyond(rules, caller, power, f"That {what} holds")


def _refuse_beyond(rules: ScopeRules, caller: Identity, scopes: frozenset[str], what: str) -> None:
    lacking = missing(rules, caller.scopes, scopes)
    if lacking:
        raise InsufficientScope(
            lacking, all_of=True, message=f"{what} scopes the caller lacks: {' '.join(lacking)}."
        )


class Powers:
    """What stored credentials and users can do in a workspace now, by the pipeline's own code."""

    def __init__(self, config: Config, resolver: WorkspaceResolver) -> None:
        self.config = config
        self.rules = config.scopes
        self.resolver = resolver

    @classmethod
    def for_store(cls, config: Config, store: Store) -> Powers:
        """For callers without a running gateway (the CLI): a private, short-lived cache."""
        return cls(config, WorkspaceResolver(config, AuthCache(store, config.cache)))

    async def workspace(self, workspace_id: str) -> Workspace | None:
        ws = await self.resolver.cache.get_workspace(workspace_id, "id")
        return None if ws is None or ws.deleted_at is not None else ws

    async def of_user(self, user_id: str, ws: Workspace) -> Identity:
        """The user as a dashboard session sees them: their role's scopes; 403 if not a member."""
        return await self.resolver.bind(Principal("session", user_id=user_id), ws)

    async def of_token(self, record: TokenRecord) -> frozenset[str]:
        """The scopes ``record`` would have in force in its workspace (nothing if it has none)."""
        ws = await self.workspace(record.workspace_id)
        if ws is None:
            return frozenset()
        try:
            principal = principal_for(record, self.config.token_type(record.type_prefix))
            return (await self.resolver.bind(principal, ws)).scopes
        except WorkspaceDenied:
            return frozenset()  # its user left the workspace: it can do nothing there

    async def of_grant(self, scopes: frozenset[str], user_id: str, ws: Workspace) -> frozenset[str]:
        """An OAuth grant's power: its scopes bounded by its user's current role."""
        try:
            held = (await self.of_user(user_id, ws)).scopes
        except WorkspaceDenied:
            return frozenset()
        return effective_scopes(self.rules, scopes, held)

    @staticmethod
    def joint(rules: ScopeRules, a: Identity, b: Identity) -> frozenset[str]:
        """What two principals hold in common (a creator minting for another user)."""
        return effective_scopes(rules, a.scopes, b.scopes)

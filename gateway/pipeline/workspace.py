"""The workspace step: which workspace the request is for, and whether the principal may act in it.

The workspace comes from a header (id, slug or either), the first label of the Host, or the token
itself. A token only ever acts in its own workspace; a user (session, PAT that inherits permissions,
OAuth grant) must also be a current member, and their role's scopes bound what they may do.
Unknown and deleted workspaces are refused exactly like foreign ones, so ids cannot be probed.
"""

from __future__ import annotations

import re

from aiohttp import web

from gateway.config import Config, ScopeRules
from gateway.core.errors import InvalidWorkspace, PlanRequired, WorkspaceDenied, WorkspaceRequired
from gateway.core.identity import Identity, Principal
from gateway.store.base import Workspace
from gateway.store.cache import AuthCache

__all__ = ["WorkspaceResolver", "effective_scopes"]

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")


def effective_scopes(
    rules: ScopeRules, token_scopes: frozenset[str] | None, role_scopes: frozenset[str] | None
) -> frozenset[str]:
    """The scopes in force: the token's, bounded by the role's when there is a role.

    ``None`` means "not a constraint". The superuser scope on one side yields the other side.
    """
    su = rules.superuser
    sides = [rules.expand(s) for s in (token_scopes, role_scopes) if s is not None]
    if not sides:
        return frozenset()
    if len(sides) == 1:
        return sides[0]
    a, b = sides
    if su and su in a:
        return b
    if su and su in b:
        return a
    return a & b


class WorkspaceResolver:
    def __init__(self, config: Config, cache: AuthCache) -> None:
        self.source = config.workspace
        self.cache = cache
        self.rules = config.scopes
        self.roles = config.roles

    def requested(self, request: web.Request) -> str | None:
        """The workspace key the request names, validated; ``None`` when it names none."""
        src = self.source
        if src.source == "header":
            assert src.header is not None
            values = request.headers.getall(src.header, ())
            if len(values) > 1:
                raise InvalidWorkspace("Send the workspace header once.", reason="workspace_dup")
            if not values:
                if src.required:
                    raise WorkspaceRequired(
                        f"The {src.header} header is required.", reason="workspace_missing"
                    )
                return None
            value = values[0].strip()
        elif src.source == "host":
            host = (request.headers.get("Host") or "").lower()
            host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if src.host_suffix:
                suffix = src.host_suffix.lower().lstrip(".")
                if not host.endswith("." + suffix):
                    raise WorkspaceRequired(
                        "The host does not name an organization.", reason="workspace_host"
                    )
                host = host[: -len(suffix) - 1]
                if "." in host:
                    # x.acme.<suffix>: the first label here, the last one to an upstream that
                    # strips the suffix. Two readings of one Host: neither is taken.
                    raise WorkspaceRequired(
                        "The host does not name an organization: one label before "
                        f"{suffix}, please.",
                        reason="workspace_host_labels",
                    )
            value = host.split(".", 1)[0]
            if not value:
                raise WorkspaceRequired(
                    "The host does not name an organization.", reason="workspace_host"
                )
        else:
            return None
        if src.id_format == "objectid":
            # ObjectIds are hex: accepted in any case, compared in lowercase (issue 17).
            value = value.lower()
        if not _SAFE_VALUE.match(value) or (
            src.pattern is not None and not src.pattern.fullmatch(value)
        ):
            raise InvalidWorkspace(reason="workspace_malformed")
        return value

    async def resolve(self, request: web.Request, principal: Principal) -> Identity:
        key = self.requested(request)
        token = principal.token
        if key is None:
            if token is None:
                raise WorkspaceRequired(reason="workspace_missing")
            ws = await self.cache.get_workspace(token.workspace_id, "id")
        else:
            ws = await self.cache.get_workspace(key, self.source.match)
        if ws is None or ws.deleted_at is not None:
            raise WorkspaceDenied(reason="workspace_unknown")
        if token is not None and token.workspace_id != ws.id:
            raise WorkspaceDenied(reason="workspace_mismatch")
        tt = principal.token_type
        if tt is not None and tt.plans and ws.plan not in tt.plans:
            # Minting checks the plan too, but a workspace can leave the plan afterwards (Spedy:
            # "PATs require a Pro plan subscription"), so it is checked on every request as well.
            raise PlanRequired(
                f"{tt.name} tokens require the {' or '.join(sorted(tt.plans))} plan.",
                reason="plan",
            )
        return await self.bind(principal, ws)

    async def bind(self, principal: Principal, ws: Workspace) -> Identity:
        """The principal acting in ``ws`` with the scopes in force there (no workspace match check)."""
        token = principal.token
        tt = principal.token_type
        user_bound = (
            token is None
            or principal.auth_method == "oauth"
            or (tt is not None and tt.inherit_user_permissions)
        )
        if not user_bound:
            assert token is not None
            return Identity(principal, ws, effective_scopes(self.rules, token.scopes, None))
        user_id = principal.user_id
        if user_id is None:
            raise WorkspaceDenied(reason="no_user")
        membership = await self.cache.get_membership(user_id, ws.id)
        if membership is None:
            raise WorkspaceDenied(reason="not_a_member")
        role_scopes = self.roles.get(membership.role, frozenset())
        scopes = effective_scopes(self.rules, token.scopes if token else None, role_scopes)
        return Identity(principal, ws, scopes, role=membership.role)

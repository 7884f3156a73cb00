"""The runtime form of the sections on who is calling (``token_types``, ``workspace``, ``scopes``,
``identity_headers``): frozen, slotted dataclasses that authentication and authorization read on
every request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CredentialSource", "IdentityHeaders", "ScopeRules", "TokenType", "WorkspaceSource"]


@dataclass(frozen=True, slots=True)
class CredentialSource:
    """Where a token is read: a header, with a scheme (``Bearer``) or the raw header value."""

    header: str
    scheme: str | None = "Bearer"


@dataclass(frozen=True, slots=True)
class TokenType:
    name: str
    prefix: str
    kind: str
    environment: str
    credential: CredentialSource
    # PATs act with the creating user's *current* permissions in the workspace (Spedy).
    inherit_user_permissions: bool = False
    # Workspace plans allowed to mint this type (Spedy: PATs require Pro); empty means any.
    plans: frozenset[str] = frozenset()
    # Route names or tags this type may be used on (issue 17: browser keys only on browser-SDK
    # routes); empty means every route.
    routes: frozenset[str] = frozenset()
    # A key of this type with no allowed domains works from no origin (public browser keys).
    require_allowed_domains: bool = False
    # Presented as a TLS client certificate, not in a header (issue 22): see gateway/pipeline/authn.py.
    client_certificate: bool = False


@dataclass(frozen=True, slots=True)
class WorkspaceSource:
    source: Literal["header", "host", "token"] = "token"
    header: str | None = None
    match: Literal["id", "slug", "any"] = "any"
    required: bool = True
    pattern: re.Pattern[str] | None = None
    host_suffix: str | None = None
    id_format: Literal["prefixed", "objectid"] = "prefixed"


@dataclass(frozen=True, slots=True)
class ScopeRules:
    """``known`` (empty: any), the superuser scope, and implications closed at load time."""

    known: frozenset[str] = frozenset()
    superuser: str | None = "admin:all"
    implies: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def expand(self, granted: frozenset[str]) -> frozenset[str]:
        out = set(granted)
        for scope in granted:
            out |= self.implies.get(scope, frozenset())
        return frozenset(out)


@dataclass(frozen=True, slots=True)
class IdentityHeaders:
    token_id: str = "X-Gateway-Token-Id"
    user_id: str = "X-Gateway-User-Id"
    workspace_id: str = "X-Gateway-Workspace-Id"
    workspace_slug: str = "X-Gateway-Workspace-Slug"
    scopes: str = "X-Gateway-Scopes"
    auth_method: str = "X-Gateway-Auth-Method"
    environment: str = "X-Gateway-Environment"

    def names(self) -> tuple[str, ...]:
        return (
            self.token_id,
            self.user_id,
            self.workspace_id,
            self.workspace_slug,
            self.scopes,
            self.auth_method,
            self.environment,
        )

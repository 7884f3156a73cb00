"""The authenticated caller: produced by authentication, completed by the workspace step."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config import TokenType
from gateway.store.base import TokenRecord, Workspace

__all__ = ["Identity", "Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who presented the credential, before the workspace is known.

    ``token`` is set for token credentials (API keys, PATs, OAuth access tokens); ``user_id`` alone
    for session JWTs, whose permissions come from the user's memberships.
    """

    auth_method: str  # "token" | "oauth" | "session"
    token: TokenRecord | None = None
    token_type: TokenType | None = None
    user_id: str | None = None
    environment: str = "live"

    @property
    def token_id(self) -> str | None:
        return self.token.id if self.token else None

    @property
    def visible_prefix(self) -> str | None:
        return self.token.visible_prefix if self.token else None


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller inside one workspace, with the scopes that are in force right now."""

    principal: Principal
    workspace: Workspace
    scopes: frozenset[str]
    role: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def token_id(self) -> str | None:
        return self.principal.token_id

    @property
    def user_id(self) -> str | None:
        p = self.principal
        return p.user_id or (p.token.user_id if p.token else None)

    @property
    def environment(self) -> str:
        return self.principal.environment

    @property
    def auth_method(self) -> str:
        return self.principal.auth_method

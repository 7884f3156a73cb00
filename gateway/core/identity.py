"""The authenticated caller: produced by authentication, completed by the workspace step."""

from __future__ import annotations

from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _json_str
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: core imports nothing of the gateway at run time
    from gateway.config import TokenType
    from gateway.store.base import TokenRecord, Workspace

__all__ = ["Identity", "Principal", "json_text", "log_fields"]


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


def json_text(value: str | None) -> str:
    """A JSON string or null, escaped exactly as ``json`` does by default (ensure_ascii)."""
    return "null" if value is None else _json_str(value)


def log_fields(principal: Principal | None, identity: Identity | None) -> str:
    """Who made the request, as the access line's ``token_id``, ``token_prefix``, ``workspace``
    and ``user`` members (compact JSON, no braces); the cache-hit memo keeps it per identity."""
    user = identity.user_id if identity else (principal.user_id if principal else None)
    return (
        f'"token_id":{json_text(principal.token_id if principal else None)},'
        f'"token_prefix":{json_text(principal.visible_prefix if principal else None)},'
        f'"workspace":{json_text(identity.workspace.id if identity else None)},"user":{json_text(user)}'
    )

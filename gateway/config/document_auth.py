"""``gateway.yaml``'s sections on who is calling and what they may do, what the pipeline's
authentication and authorization read: ``token_types``, ``workspace``, ``scopes`` and
``identity_headers`` (``roles`` is a plain mapping on :class:`~gateway.config.document.Document`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    model_validator,
)

from gateway.config.fields import (
    PREFIX,
    Bool,
    HeaderName,
    Section,
    StrList,
    Text,
    check,
    default_of,
    one_or_many,
)
from gateway.config.problems import invalid
from gateway.config.runtime_auth import IdentityHeaders, TokenType, WorkspaceSource

__all__ = ["CredentialDoc", "IdentityHeadersDoc", "ScopesDoc", "TokenTypeDoc", "WorkspaceDoc"]

_SCOPE = re.compile(r"^[A-Za-z0-9_.:*-]+$")


# -- token types and workspace -----------------------------------------------------------------------


class CredentialDoc(Section):
    """Where a token is read: a header, with a scheme or (``scheme: null``) the raw value."""

    _nullable = frozenset({"scheme"})
    header: HeaderName = "Authorization"
    scheme: str | None = Field(
        default=None, description="default: Bearer for the Authorization header, else none"
    )

    def resolved_scheme(self) -> str | None:
        if "scheme" in self.model_fields_set:
            return self.scheme
        return "Bearer" if self.header == "Authorization" else None


class TokenTypeDoc(Section):
    name: str | None = Field(default=None, description="default: the prefix")
    prefix: Annotated[
        str, check(PREFIX.fullmatch, "must be lowercase letters/digits ending in '_'")
    ]
    kind: Literal["api_key", "pat", "oauth_access", "workspace_key"] = "api_key"
    environment: str = "live"
    credential: CredentialDoc = CredentialDoc()
    inherit_user_permissions: Bool = default_of(TokenType, "inherit_user_permissions")
    plans: StrList = []
    routes: StrList = []
    require_allowed_domains: Bool = default_of(TokenType, "require_allowed_domains")
    client_certificate: Bool = default_of(TokenType, "client_certificate")

    @model_validator(mode="after")
    def _certificate_not_header(self) -> TokenTypeDoc:
        if self.client_certificate and "credential" in self.model_fields_set:
            raise invalid("a client_certificate type is not read from a header", at=".credential")
        return self


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise invalid(f"is not a valid regular expression: {exc}", value) from None
    return value


class WorkspaceDoc(Section):
    source: Literal["header", "host", "token"] = default_of(WorkspaceSource, "source")
    header: HeaderName | None = None
    match: Literal["id", "slug", "any"] = default_of(WorkspaceSource, "match")
    required: Bool = default_of(WorkspaceSource, "required")
    pattern: Annotated[str, AfterValidator(_regex)] | None = None
    host_suffix: str | None = None
    id_format: Literal["prefixed", "objectid"] = default_of(WorkspaceSource, "id_format")

    @model_validator(mode="after")
    def _header_for_header_source(self) -> WorkspaceDoc:
        if self.source == "header" and self.header is None:
            raise invalid("must be an HTTP header name", None, at=".header")
        return self


# -- scopes and identity headers ---------------------------------------------------------------------


Scope = Annotated[Text, check(_SCOPE.match, "a scope may hold letters, digits and . : _ * -")]


class ScopesDoc(Section):
    """``known`` (empty: any), the superuser scope (``null``: none), implications."""

    _nullable = frozenset({"superuser"})
    known: Annotated[
        list[Scope], BeforeValidator(one_or_many, json_schema_input_type=str | list[str])
    ] = []
    superuser: str | None = "admin:all"
    implies: dict[str, StrList] = {}


class IdentityHeadersDoc(Section):
    token_id: HeaderName = default_of(IdentityHeaders, "token_id")
    user_id: HeaderName = default_of(IdentityHeaders, "user_id")
    workspace_id: HeaderName = default_of(IdentityHeaders, "workspace_id")
    workspace_slug: HeaderName = default_of(IdentityHeaders, "workspace_slug")
    scopes: HeaderName = default_of(IdentityHeaders, "scopes")
    auth_method: HeaderName = default_of(IdentityHeaders, "auth_method")
    environment: HeaderName = default_of(IdentityHeaders, "environment")

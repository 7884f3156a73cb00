"""The shape of ``gateway.yaml``: :class:`Document`, the whole file, one key per section in the
file's order. The JSON Schema editors use is generated from it (``gateway config-schema``).

Each section's pydantic model, with every key's type, default and single-key rule, lives with the
others of its group, named after the part of the gateway that reads it:

    document_edge.py      listeners, limits, errors, trusted_proxies
    document_store.py     store, cache
    document_auth.py      token_types, workspace, scopes, identity_headers
    document_routing.py   upstreams, routes
    document_features.py  dashboard, oauth, sessions, rate_limits, external_auth, tracing

Unknown keys are refused everywhere (``extra="forbid"``). A key given as ``null`` means "not given"
(its default applies) except where ``null`` has a meaning of its own (``_nullable``). Defaults that
the runtime dataclasses also carry are read from them (:func:`~gateway.config.fields.default_of`),
so each is stated once. Rules that span sections (a route naming an upstream, a token type naming a
route) are checked by :mod:`gateway.config.build`, which also builds the runtime objects. The
shared value types live in :mod:`gateway.config.fields`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo, model_validator

from gateway.config.document_auth import IdentityHeadersDoc, ScopesDoc, TokenTypeDoc, WorkspaceDoc
from gateway.config.document_edge import ErrorsDoc, LimitsDoc, ListenersDoc, TrustedProxies
from gateway.config.document_features import (
    DashboardDoc,
    ExternalAuthDoc,
    OAuthDoc,
    RateLimitsDoc,
    SessionsDoc,
    TracingDoc,
)
from gateway.config.document_routing import RouteDoc, UpstreamDoc, UpstreamField
from gateway.config.document_store import CacheDoc, StoreDoc, StoreField
from gateway.config.fields import Section, StrList
from gateway.config.problems import invalid

__all__ = ["LENIENT", "Document"]

# Validation context of the second, lenient round (gateway.config.loader): what the first round
# refused has been set aside, and an emptied ``upstreams`` is not reported twice.
LENIENT = {"lenient": True}


def _some_upstream(value: dict[str, UpstreamDoc], info: ValidationInfo) -> dict[str, UpstreamDoc]:
    if not value and not (info.context or {}).get("lenient"):
        raise invalid("must be a non-empty mapping of name to upstream", value)
    return value


class Document(Section):
    """``gateway.yaml``."""

    model_config = ConfigDict(title="gateway.yaml")

    listeners: ListenersDoc = ListenersDoc()
    store: StoreField = StoreDoc()
    token_types: list[TokenTypeDoc] = Field(
        default=[{"name": "api_key", "prefix": "gw_", "kind": "api_key"}], validate_default=True
    )
    workspace: WorkspaceDoc = WorkspaceDoc()
    upstreams: Annotated[dict[str, UpstreamField], AfterValidator(_some_upstream)]
    routes: list[RouteDoc] = []
    scopes: ScopesDoc = ScopesDoc()
    roles: dict[str, StrList] = {"owner": ["admin:all"], "admin": ["admin:all"]}
    identity_headers: IdentityHeadersDoc = IdentityHeadersDoc()
    cache: CacheDoc = CacheDoc()
    errors: ErrorsDoc = ErrorsDoc()
    trusted_proxies: TrustedProxies = []
    pepper: str | None = None
    reject_query_credentials: StrList = ["access_token", "api_key", "token"]
    # Tokens with the superuser scope in this workspace (slug or id) administer every workspace.
    operator_workspace: str | None = None
    limits: LimitsDoc = LimitsDoc()
    dashboard: DashboardDoc | None = None
    oauth: OAuthDoc | None = None
    sessions: SessionsDoc | None = None
    rate_limits: RateLimitsDoc = RateLimitsDoc()
    external_auth: ExternalAuthDoc | None = None
    tracing: TracingDoc | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_are_on(cls, data: Any) -> Any:
        # `oauth:` and `sessions:` with nothing under them turn the feature on with its defaults.
        if isinstance(data, dict):
            return {
                k: {} if v is None and k in ("oauth", "sessions") else v for k, v in data.items()
            }
        return data

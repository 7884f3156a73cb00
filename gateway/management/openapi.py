"""The OpenAPI 3.1 document of every endpoint the gateway serves itself, at ``/openapi.json`` on the
admin listener, generated so that it cannot drift from the handlers:

* operations come from the route tables the listeners are built from: ``ROUTES`` of
  :mod:`gateway.management.adminapi` and :mod:`gateway.features.oauth.admin` (admin listener, tag ``admin``), and the
  built-in handlers of :data:`BUILTINS` (proxy listener, tag ``proxy`` or ``velt``) at the paths the
  Spedy preset and ``oauth.paths``' defaults give them;
* request bodies are the JSON Schema of the route's model in :mod:`gateway.management.bodies` (the same model
  the handler validates with), under ``components/schemas``;
* each operation's summary and responses come from :data:`DOCS`; an operation without an entry, or
  an entry without an operation, makes :func:`document` fail, so a route cannot go undocumented.

tests/e2e/test_openapi.py runs schemathesis against a running gateway to keep the responses honest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway import __version__
from gateway.config import OAuthPaths
from gateway.features import selfservice, velt
from gateway.features.oauth import admin as oauth_admin
from gateway.features.oauth import http as oauth_http
from gateway.management import adminapi as admin_api
from gateway.management import bodies
from gateway.pipeline.builtin import BuiltinHandler

__all__ = ["BUILTINS", "DOCS", "Doc", "document", "install_admin"]

S: dict[str, Any] = {"type": "string"}
NS: dict[str, Any] = {"type": ["string", "null"]}
SL: dict[str, Any] = {"type": "array", "items": S}
INT: dict[str, Any] = {"type": "integer"}
ID = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"}
NO_STORE = {"Cache-Control": {"schema": {"const": "no-store"}, "required": True}}


def obj(required: str = "", **props: Any) -> dict[str, Any]:
    """An object schema: ``required`` names the required properties, space-separated."""
    return {"type": "object", "required": required.split(), "properties": props}


def each(schema: dict[str, Any], names: str) -> dict[str, Any]:
    """``names`` (space-separated) all with ``schema``: spread into :func:`obj`."""
    return dict.fromkeys(names.split(), schema)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def listing(key: str, item: str) -> dict[str, Any]:
    return obj(key, **{key: {"type": "array", "items": ref(item)}})


def plus(base: str, key: str, required: bool = True) -> dict[str, Any]:
    """``base`` with one more string property (a secret shown once)."""
    extra: dict[str, Any] = {"required": [key]} if required else {}
    return {"allOf": [ref(base), {**extra, "properties": {key: S}}]}


def _json(schema: dict[str, Any], description: str, **more: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}, **more}


ERROR_TEXT = {
    400: "Invalid request",
    401: "Missing, malformed, unknown, expired or revoked credential",
    403: "Not allowed",
    404: "Not found (also for what the caller may not see)",
    409: "It exists already",
    503: "Store unavailable",
}


def errors(*codes: int, envelope: str = "Error") -> dict[str, Any]:
    return {str(c): _json(ref(envelope), ERROR_TEXT[c]) for c in codes}


CODES = (400, 401, 403, 404, 503)
REFUSALS = errors(*CODES)
OAUTH_CODES = "invalid_request invalid_client invalid_grant unauthorized_client"
OAUTH_CODES += " unsupported_grant_type invalid_scope"
OAUTH_ERROR = obj("error", error={"enum": OAUTH_CODES.split()}, error_description=S)
OAUTH_ERRORS = {
    "400": _json(OAUTH_ERROR, "RFC 6749 §5.2 error", headers=NO_STORE),
    "401": _json(OAUTH_ERROR, "Client authentication failed", headers=NO_STORE),
    **errors(503),
}

# What the handlers answer (request bodies come from gateway.management.bodies).
RESPONSES: dict[str, Any] = {
    "Error": obj(
        "error",
        error=obj(
            "code message request_id", **each(S, "code message request_id"), required_scopes=SL
        ),
    ),
    "VeltError": obj(
        "error",
        error={**obj("status message", **each(S, "status message")), "additionalProperties": False},
    ),
    "Token": obj(
        "id name prefix status scopes created_at",
        **each(S, "id name type kind environment workspace_id"),
        **each(NS, "user_id expires_at revoked_at last_used_at created_by"),
        prefix={"type": "string", "minLength": 1, "maxLength": 16},
        scopes=SL,
        allowed_domains=SL,
        status={"enum": ["active", "expired", "revoked"]},
        created_at={"type": "string", "format": "date-time"},
    ),
    "TokenWithSecret": plus("Token", "token"),
    "MeToken": obj(
        "id name lastUsedAt createdAt",
        **each(S, "id name prefix createdAt"),
        **each(NS, "lastUsedAt expiresAt"),
        scopes=SL,
    ),
    "Workspace": obj("id slug name plan", **each(S, "id slug name plan created_at")),
    "OAuthApp": obj(
        "client_id name type redirect_uris scopes created_at",
        **each(S, "client_id name created_at"),
        **each(SL, "redirect_uris scopes"),
        type={"enum": ["confidential", "public"]},
        workspace_id=NS,
    ),
    "OAuthAppWithSecret": plus("OAuthApp", "client_secret", required=False),
    "OAuthGrant": obj(
        "id client_id user_id workspace_id scopes created_at",
        **each(S, "id client_id user_id workspace_id created_at"),
        client_name=NS,
        scopes=SL,
    ),
}
USER = obj("id email", **each(S, "id email"), name=NS)
MEMBERSHIP = obj("user_id workspace_id role", **each(S, "user_id workspace_id role"))
MEMBER = obj("user_id role", **each(S, "user_id role created_at"))
MEMBERS = obj("members", members={"type": "array", "items": MEMBER})
EVENT = obj(
    "at action",
    **each(S, "at action"),
    **each(NS, "actor address token_id token_prefix workspace_id detail"),
)
EVENTS = obj("events", events={"type": "array", "items": EVENT})
INTROSPECTION = obj(
    "active",
    active={"type": "boolean"},
    **each(S, "scope client_id token_type workspace_id"),
    **each(INT, "exp iat"),
    sub=NS,
)
OAUTH_TOKENS = obj(
    "access_token token_type expires_in refresh_token scope",
    **each(S, "access_token refresh_token scope"),
    token_type={"const": "Bearer"},
    expires_in=INT,
)
METADATA = {
    "type": "object",
    "required": [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "code_challenge_methods_supported",
    ],
}
VELT_KEYS = obj("apiKey", **each(S, "apiKey authToken"))
VELT_RESULT = obj(
    "result",
    result=obj("status message data", status={"const": "success"}, message=S, data=VELT_KEYS),
)
READY = obj("status store", **each(S, "status store config"))


@dataclass(frozen=True)
class Doc:
    """What the route table does not say about an operation: its summary and responses."""

    summary: str
    schema: dict[str, Any] | None = None  # the success body; None: no body
    status: int = 200
    errors: dict[str, Any] = field(default_factory=lambda: REFUSALS)
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    public: bool = False  # no credential (security: [])
    headers: dict[str, Any] | None = None


def public(summary: str, schema: dict[str, Any] | None, **more: Any) -> Doc:
    return Doc(summary, schema, errors=more.pop("errors", {}), public=True, **more)


@dataclass(frozen=True)
class Builtin:
    """A built-in handler on the proxy listener, at the path its preset or default gives it."""

    method: str
    path: str
    handler: BuiltinHandler
    body: type[bodies.Body] | None = None
    tag: str = "proxy"


_P = OAuthPaths()
_ME = "/api/v1/me/tokens"  # config/spedy.yaml
_VELT = "/v2/workspace/apikey/create"  # config/velt.yaml
BUILTINS = (
    Builtin("GET", _ME, selfservice.me_tokens),
    Builtin("POST", _ME, selfservice.me_tokens, bodies.MeTokenCreate),
    Builtin("GET", _ME + "/{tokenId}", selfservice.me_tokens),
    Builtin("DELETE", _ME + "/{tokenId}", selfservice.me_tokens),
    Builtin("POST", _VELT, velt.apikey_create, bodies.VeltKeyRequest, "velt"),
    Builtin("POST", _P.token, oauth_http.token_endpoint, bodies.OAuthTokenRequest),
    Builtin("POST", _P.revoke, oauth_http.revoke_endpoint, bodies.OAuthTokenParams),
    Builtin("POST", _P.introspect, oauth_http.introspect_endpoint, bodies.OAuthTokenParams),
    Builtin("GET", _P.metadata, oauth_http.metadata_endpoint),
)
# Served by gateway.app (health) and by this module, on the admin listener.
OWN = ("GET /healthz", "GET /readyz", "GET /openapi.json")

WS, TOK, APP = "/admin/workspaces/{ws}", "/admin/tokens/{id}", "/admin/oauth-apps"
DOCS: dict[str, Doc] = {
    "GET /healthz": public("Process alive", obj("status", status={"const": "ok"})),
    "GET /readyz": public(
        "Store reachable, config loaded",
        READY,
        errors={"503": _json({"type": "object"}, "Not ready")},
    ),
    "GET /openapi.json": public("This document (OpenAPI 3.1)", {"type": "object"}),
    # gateway.management.adminapi
    "GET /admin/workspaces": Doc("All workspaces (operator)", listing("workspaces", "Workspace")),
    "POST /admin/workspaces": Doc("Create a workspace (operator)", ref("Workspace"), 201),
    f"GET {WS}": Doc("A workspace", ref("Workspace")),
    f"PATCH {WS}": Doc("Change the plan (operator)", ref("Workspace")),
    f"DELETE {WS}": Doc("Delete (operator); its tokens stop working", status=204),
    "POST /admin/users": Doc("Create a user", USER, 201, {**REFUSALS, **errors(409)}),
    f"GET {WS}/members": Doc("Members and roles", MEMBERS),
    f"PUT {WS}/members/{{user}}": Doc("Add a member or change their role", MEMBERSHIP),
    f"DELETE {WS}/members/{{user}}": Doc("Remove a member", status=204),
    f"GET {WS}/tokens": Doc("Every token of the workspace", listing("tokens", "Token")),
    f"POST {WS}/tokens": Doc("Mint a token; returned once", ref("TokenWithSecret"), 201),
    f"GET {TOK}": Doc("A token, never its secret", ref("Token")),
    f"POST {TOK}/revoke": Doc("Revoke", ref("Token")),
    f"POST {TOK}/rotate": Doc(
        "New secret; the old one works for a grace period", ref("TokenWithSecret")
    ),
    f"GET {WS}/audit": Doc(
        "Token create/rotate/revoke events, newest first",
        EVENTS,
        query={"limit": {"type": "integer", "minimum": 1, "maximum": 1000}},
    ),
    # gateway.features.oauth.admin (404 NOT_FOUND when the config has no oauth: section)
    f"GET {APP}": Doc(
        "OAuth apps (an operator sees all, a workspace admin its own)", listing("apps", "OAuthApp")
    ),
    f"POST {APP}": Doc(
        "Register an app; its client_secret is shown once", ref("OAuthAppWithSecret"), 201
    ),
    f"GET {APP}/{{client_id}}": Doc("An app, never its secret", ref("OAuthApp")),
    f"DELETE {APP}/{{client_id}}": Doc("Delete an app; its grants and tokens end", status=204),
    f"GET {WS}/oauth-grants": Doc(
        "Active OAuth grants in a workspace (optionally one user's)",
        listing("grants", "OAuthGrant"),
        query={"user": ID},
    ),
    "DELETE /admin/oauth-grants/{grant_id}": Doc("Revoke a grant and its tokens", status=204),
    # built-in handlers on the proxy listener
    f"GET {_ME}": Doc("The caller's active tokens (Spedy)", listing("tokens", "MeToken")),
    f"POST {_ME}": Doc("Create a personal access token; shown once", plus("MeToken", "token"), 201),
    f"GET {_ME}/{{tokenId}}": Doc("One of the caller's tokens, without its secret", ref("MeToken")),
    f"DELETE {_ME}/{{tokenId}}": Doc("Revoke permanently", status=204),
    f"POST {_VELT}": Doc(
        "Create an API key for the workspace (Velt)",
        VELT_RESULT,
        errors=errors(*CODES, envelope="VeltError"),
    ),
    f"POST {_P.token}": public(
        "OAuth token endpoint: authorization_code (PKCE S256) and refresh_token",
        OAUTH_TOKENS,
        errors=OAUTH_ERRORS,
        headers=NO_STORE,
    ),
    f"POST {_P.revoke}": public(
        "RFC 7009 revocation (of the client's own tokens)", None, errors=OAUTH_ERRORS
    ),
    f"POST {_P.introspect}": public(
        "RFC 7662 introspection (of the client's own tokens)", INTROSPECTION, errors=OAUTH_ERRORS
    ),
    f"GET {_P.metadata}": public("RFC 8414 authorization server metadata", METADATA),
}
STATUS_TEXT = {200: "OK", 201: "Created", 204: "Done"}


def _operations() -> Iterator[tuple[str, str, str, type[bodies.Body] | None]]:
    """(method, path, tag, body model) of every operation the gateway serves itself."""
    for op in OWN:
        method, path = op.split(" ")
        yield method, path, "admin", None
    for route in (*admin_api.ROUTES, *oauth_admin.ROUTES):
        yield route.method, route.path, "admin", route.body
    for b in BUILTINS:
        yield b.method, b.path, b.tag, b.body


def _operation(doc: Doc, tag: str, body: type[bodies.Body] | None) -> dict[str, Any]:
    text = STATUS_TEXT[doc.status]
    ok: dict[str, Any] = {"description": text} if doc.schema is None else _json(doc.schema, text)
    if doc.headers:
        ok["headers"] = doc.headers
    op: dict[str, Any] = {"tags": [tag], "summary": doc.summary}
    if doc.public:
        op["security"] = []
    if doc.query:
        op["parameters"] = [
            {"name": k, "in": "query", "required": False, "schema": v} for k, v in doc.query.items()
        ]
    if body is not None:
        schema = ref(body.__name__)
        types = ["application/x-www-form-urlencoded"] if body.form else []
        types.append("application/json")
        op["requestBody"] = {
            # A body with no required field may be left out (rotate: the default grace).
            "required": any(f.is_required() for f in body.model_fields.values()),
            "content": {t: {"schema": schema} for t in types},
        }
    op["responses"] = {str(doc.status): ok, **doc.errors}
    return op


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    models: list[type[bodies.Body]] = []
    seen: set[str] = set()
    for method, path, tag, body in _operations():
        key = f"{method} {path}"
        if key not in DOCS or key in seen:
            raise LookupError(f"{key} is served twice, or not documented in DOCS")
        doc = DOCS[key]
        seen.add(key)
        item = paths.setdefault(path, {})
        names = re.findall(r"\{(\w+)\}", path)
        if names:
            item["parameters"] = [
                {"name": n, "in": "path", "required": True, "schema": ID} for n in names
            ]
        item[method.lower()] = _operation(doc, tag, body)
        if body is not None and body not in models:
            models.append(body)
    stale = set(DOCS) - seen
    if stale:
        raise LookupError(f"DOCS describes operations nobody serves: {sorted(stale)}")
    return {
        "openapi": "3.1.0",
        "info": {"title": "gateway: built-in endpoints", "version": __version__},
        "components": {
            "schemas": {**RESPONSES, **bodies.json_schemas(models, "#/components/schemas/{model}")},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "veltAuthToken": {"type": "apiKey", "in": "header", "name": "x-velt-auth-token"},
            },
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def install_admin(app: web.Application, gw: object) -> None:
    doc = document()

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(doc)

    app.router.add_get("/openapi.json", openapi)

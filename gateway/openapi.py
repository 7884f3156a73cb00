"""The OpenAPI 3.1 document of every endpoint the gateway serves itself, at ``/openapi.json`` on the
admin listener.

Operations tagged ``proxy`` are served on the proxy listener when a route names their built-in
handler (Spedy's ``me_tokens``, Velt's ``velt_apikey_create``); those tagged ``admin`` on the admin
listener. The schemas describe exactly what the handlers return; tests/e2e/test_openapi.py runs
schemathesis against a running gateway to keep them honest.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import __version__

__all__ = ["document", "install_admin"]

NULLABLE_STR: dict[str, Any] = {"type": ["string", "null"]}
ID = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int, envelope: str = "Error") -> dict[str, Any]:
    text = {
        400: "Invalid request",
        401: "Missing, malformed, unknown, expired or revoked credential",
        403: "Not allowed",
        404: "Not found (also for what the caller may not see)",
        405: "Method not allowed",
        409: "It exists already",
        429: "Rate limited",
        502: "Upstream unavailable",
        503: "Store unavailable",
        504: "Upstream timeout",
    }
    return {str(c): _json(_ref(envelope), text[c]) for c in codes}


PROXY_ERRORS = (400, 401, 403, 404, 503)
ADMIN_ERRORS = (400, 401, 403, 404, 503)


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _param(name: str, where: str = "path", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema or ID}


def document() -> dict[str, Any]:
    token_view = {
        "type": "object",
        "required": ["id", "name", "prefix", "status", "scopes", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "type": {"type": "string"},
            "kind": {"type": "string"},
            "environment": {"type": "string"},
            "prefix": {"type": "string", "minLength": 1, "maxLength": 16},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "workspace_id": {"type": "string"},
            "user_id": NULLABLE_STR,
            "status": {"enum": ["active", "expired", "revoked"]},
            "created_at": {"type": "string", "format": "date-time"},
            "expires_at": NULLABLE_STR,
            "revoked_at": NULLABLE_STR,
            "last_used_at": NULLABLE_STR,
            "allowed_domains": {"type": "array", "items": {"type": "string"}},
            "created_by": NULLABLE_STR,
        },
    }
    me_token = {
        "type": "object",
        "required": ["id", "name", "lastUsedAt", "createdAt"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "prefix": {"type": "string"},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "lastUsedAt": NULLABLE_STR,
            "createdAt": {"type": "string"},
            "expiresAt": NULLABLE_STR,
        },
    }
    workspace = {
        "type": "object",
        "required": ["id", "slug", "name", "plan"],
        "properties": {k: {"type": "string"} for k in ("id", "slug", "name", "plan", "created_at")},
    }
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "request_id"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "request_id": {"type": "string"},
                        "required_scopes": {"type": "array", "items": {"type": "string"}},
                    },
                }
            },
        },
        "VeltError": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["status", "message"],
                    "additionalProperties": False,
                    "properties": {"status": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
        "Token": token_view,
        "TokenWithSecret": {
            "allOf": [
                token_view,
                {"required": ["token"], "properties": {"token": {"type": "string"}}},
            ]
        },
        "MeToken": me_token,
        "Workspace": workspace,
        **_oauth_schemas(),
    }
    ws = _param("ws")
    tid = _param("id")
    grace = {"type": "string", "pattern": "^[0-9]{1,6}[smhdw]$"}
    paths: dict[str, Any] = {
        "/api/v1/me/tokens": {
            "get": {
                "tags": ["proxy"],
                "summary": "The caller's active tokens (Spedy)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["tokens"],
                            "properties": {"tokens": {"type": "array", "items": _ref("MeToken")}},
                        },
                        "Tokens",
                    ),
                    **_errors(*PROXY_ERRORS),
                },
            },
            "post": {
                "tags": ["proxy"],
                "summary": "Create a personal access token; the token is returned once",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": 200,
                                "pattern": "\\S",
                            },
                            "scopes": {"type": "array", "items": {"type": "string"}},
                            "expiresIn": {"type": "string", "pattern": "^[0-9]{1,5}[smhdw]$"},
                        },
                    }
                ),
                "responses": {
                    "201": _json(
                        {
                            "allOf": [
                                _ref("MeToken"),
                                {
                                    "required": ["token"],
                                    "properties": {"token": {"type": "string"}},
                                },
                            ]
                        },
                        "Created",
                    ),
                    **_errors(*PROXY_ERRORS),
                },
            },
        },
        "/api/v1/me/tokens/{tokenId}": {
            "parameters": [_param("tokenId")],
            "get": {
                "tags": ["proxy"],
                "summary": "One of the caller's tokens, without its secret",
                "responses": {"200": _json(_ref("MeToken"), "Token"), **_errors(*PROXY_ERRORS)},
            },
            "delete": {
                "tags": ["proxy"],
                "summary": "Revoke permanently",
                "responses": {"204": {"description": "Revoked"}, **_errors(*PROXY_ERRORS)},
            },
        },
        "/v2/workspace/apikey/create": {
            "post": {
                "tags": ["velt"],
                "summary": "Create an API key for the workspace (Velt)",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["data"],
                        "properties": {
                            "data": {
                                "type": "object",
                                "required": ["ownerEmail"],
                                "properties": {"ownerEmail": {"type": "string", "format": "email"}},
                            }
                        },
                    }
                ),
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["result"],
                            "properties": {
                                "result": {
                                    "type": "object",
                                    "required": ["status", "message", "data"],
                                    "properties": {
                                        "status": {"const": "success"},
                                        "message": {"type": "string"},
                                        "data": {
                                            "type": "object",
                                            "required": ["apiKey"],
                                            "properties": {
                                                "apiKey": {"type": "string"},
                                                "authToken": {"type": "string"},
                                            },
                                        },
                                    },
                                }
                            },
                        },
                        "Created",
                    ),
                    **_errors(*PROXY_ERRORS, envelope="VeltError"),
                },
            }
        },
        "/healthz": {
            "get": {
                "tags": ["admin"],
                "security": [],
                "summary": "Process alive",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"const": "ok"}},
                        },
                        "Alive",
                    )
                },
            }
        },
        "/readyz": {
            "get": {
                "tags": ["admin"],
                "security": [],
                "summary": "Store reachable, config loaded",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["status", "store"],
                            "properties": {
                                "status": {"type": "string"},
                                "store": {"type": "string"},
                                "config": {"type": "string"},
                            },
                        },
                        "Ready",
                    ),
                    "503": _json({"type": "object"}, "Not ready"),
                },
            }
        },
        "/admin/workspaces": {
            "get": {
                "tags": ["admin"],
                "summary": "All workspaces (operator)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["workspaces"],
                            "properties": {
                                "workspaces": {"type": "array", "items": _ref("Workspace")}
                            },
                        },
                        "Workspaces",
                    ),
                    **_errors(*ADMIN_ERRORS),
                },
            },
            "post": {
                "tags": ["admin"],
                "summary": "Create a workspace (operator)",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            # Any name with a visible character (as the handler checks).
                            "name": {"type": "string", "minLength": 1, "pattern": "\\S"},
                            "slug": {
                                "type": "string",
                                "pattern": "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$",
                            },
                            "plan": {"type": "string"},
                        },
                    }
                ),
                "responses": {"201": _json(_ref("Workspace"), "Created"), **_errors(*ADMIN_ERRORS)},
            },
        },
        "/admin/workspaces/{ws}": {
            "parameters": [ws],
            "get": {
                "tags": ["admin"],
                "summary": "A workspace",
                "responses": {
                    "200": _json(_ref("Workspace"), "Workspace"),
                    **_errors(*ADMIN_ERRORS),
                },
            },
            "patch": {
                "tags": ["admin"],
                "summary": "Change the plan (operator)",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["plan"],
                        "additionalProperties": False,
                        "properties": {"plan": {"type": "string"}},
                    }
                ),
                "responses": {
                    "200": _json(_ref("Workspace"), "Workspace"),
                    **_errors(*ADMIN_ERRORS),
                },
            },
            "delete": {
                "tags": ["admin"],
                "summary": "Delete (operator); its tokens stop working",
                "responses": {"204": {"description": "Deleted"}, **_errors(*ADMIN_ERRORS)},
            },
        },
        "/admin/users": {
            "post": {
                "tags": ["admin"],
                "summary": "Create a user",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["email"],
                        "additionalProperties": False,
                        "properties": {
                            "email": {"type": "string", "format": "email"},
                            "name": {"type": "string"},
                        },
                    }
                ),
                "responses": {
                    "201": _json(
                        {
                            "type": "object",
                            "required": ["id", "email"],
                            "properties": {
                                "id": {"type": "string"},
                                "email": {"type": "string"},
                                "name": NULLABLE_STR,
                            },
                        },
                        "Created",
                    ),
                    **_errors(*ADMIN_ERRORS, 409),
                },
            },
        },
        "/admin/workspaces/{ws}/members": {
            "parameters": [ws],
            "get": {
                "tags": ["admin"],
                "summary": "Members and roles",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["members"],
                            "properties": {
                                "members": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["user_id", "role"],
                                        "properties": {
                                            "user_id": {"type": "string"},
                                            "role": {"type": "string"},
                                            "created_at": {"type": "string"},
                                        },
                                    },
                                }
                            },
                        },
                        "Members",
                    ),
                    **_errors(*ADMIN_ERRORS),
                },
            },
        },
        "/admin/workspaces/{ws}/members/{user}": {
            "parameters": [ws, _param("user")],
            "put": {
                "tags": ["admin"],
                "summary": "Add a member or change their role",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["role"],
                        "additionalProperties": False,
                        "properties": {"role": {"type": "string"}},
                    }
                ),
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["user_id", "workspace_id", "role"],
                            "properties": {
                                "user_id": {"type": "string"},
                                "workspace_id": {"type": "string"},
                                "role": {"type": "string"},
                            },
                        },
                        "Membership",
                    ),
                    **_errors(*ADMIN_ERRORS),
                },
            },
            "delete": {
                "tags": ["admin"],
                "summary": "Remove a member",
                "responses": {"204": {"description": "Removed"}, **_errors(*ADMIN_ERRORS)},
            },
        },
        "/admin/workspaces/{ws}/tokens": {
            "parameters": [ws],
            "get": {
                "tags": ["admin"],
                "summary": "Every token of the workspace",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["tokens"],
                            "properties": {"tokens": {"type": "array", "items": _ref("Token")}},
                        },
                        "Tokens",
                    ),
                    **_errors(*ADMIN_ERRORS),
                },
            },
            "post": {
                "tags": ["admin"],
                "summary": "Mint a token; returned once",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": 200,
                                "pattern": "\\S",
                            },
                            "scopes": {"type": "array", "items": {"type": "string"}},
                            "type": {"type": "string"},
                            "user": {"type": "string"},
                            "expires_in": {"type": "string", "pattern": "^[0-9]{1,5}[smhdw]$"},
                            "allowed_domains": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                ),
                "responses": {
                    "201": _json(_ref("TokenWithSecret"), "Created"),
                    **_errors(*ADMIN_ERRORS),
                },
            },
        },
        "/admin/tokens/{id}": {
            "parameters": [tid],
            "get": {
                "tags": ["admin"],
                "summary": "A token, never its secret",
                "responses": {"200": _json(_ref("Token"), "Token"), **_errors(*ADMIN_ERRORS)},
            },
        },
        "/admin/tokens/{id}/revoke": {
            "parameters": [tid],
            "post": {
                "tags": ["admin"],
                "summary": "Revoke",
                "responses": {"200": _json(_ref("Token"), "Revoked"), **_errors(*ADMIN_ERRORS)},
            },
        },
        "/admin/tokens/{id}/rotate": {
            "parameters": [tid],
            "post": {
                "tags": ["admin"],
                "summary": "New secret; the old one works for the grace period",
                "requestBody": _body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"grace": grace},
                    },
                    required=False,
                ),
                "responses": {
                    "200": _json(_ref("TokenWithSecret"), "Rotated"),
                    **_errors(*ADMIN_ERRORS),
                },
            },
        },
        "/admin/workspaces/{ws}/audit": {
            "parameters": [
                ws,
                _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ],
            "get": {
                "tags": ["admin"],
                "summary": "Token create/rotate/revoke events, newest first",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["events"],
                            "properties": {
                                "events": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["at", "action"],
                                        "properties": {
                                            "at": {"type": "string"},
                                            "action": {"type": "string"},
                                            "actor": NULLABLE_STR,
                                            "address": NULLABLE_STR,
                                            "token_id": NULLABLE_STR,
                                            "token_prefix": NULLABLE_STR,
                                            "workspace_id": NULLABLE_STR,
                                            "detail": NULLABLE_STR,
                                        },
                                    },
                                }
                            },
                        },
                        "Events",
                    ),
                    **_errors(*ADMIN_ERRORS),
                },
            },
        },
        **_oauth_paths(ws),
        **_oauth_proxy_paths(),
        "/openapi.json": {
            "get": {
                "tags": ["admin"],
                "security": [],
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "gateway: built-in endpoints", "version": __version__},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "veltAuthToken": {"type": "apiKey", "in": "header", "name": "x-velt-auth-token"},
            },
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _oauth_schemas() -> dict[str, Any]:
    app = {
        "type": "object",
        "required": ["client_id", "name", "type", "redirect_uris", "scopes", "created_at"],
        "properties": {
            "client_id": {"type": "string"},
            "name": {"type": "string"},
            "type": {"enum": ["confidential", "public"]},
            "redirect_uris": {"type": "array", "items": {"type": "string"}},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "workspace_id": NULLABLE_STR,
            "created_at": {"type": "string"},
        },
    }
    grant = {
        "type": "object",
        "required": ["id", "client_id", "user_id", "workspace_id", "scopes", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "client_id": {"type": "string"},
            "client_name": NULLABLE_STR,
            "user_id": {"type": "string"},
            "workspace_id": {"type": "string"},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "string"},
        },
    }
    return {
        "OAuthApp": app,
        "OAuthAppWithSecret": {
            "allOf": [app, {"properties": {"client_secret": {"type": "string"}}}]
        },
        "OAuthGrant": grant,
    }


def _oauth_proxy_paths() -> dict[str, Any]:
    """The authorization server's API endpoints (at the `oauth.paths` defaults). The consent page
    is a browser page (HTML, redirects) and is described in the README instead."""
    oauth_error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "enum": [
                    "invalid_request",
                    "invalid_client",
                    "invalid_grant",
                    "unauthorized_client",
                    "unsupported_grant_type",
                    "invalid_scope",
                ]
            },
            "error_description": {"type": "string"},
        },
    }
    no_store = {
        "Cache-Control": {"schema": {"const": "no-store"}, "required": True},
    }

    def errors() -> dict[str, Any]:
        return {
            "400": {**_json(oauth_error, "RFC 6749 §5.2 error"), "headers": no_store},
            "401": {**_json(oauth_error, "Client authentication failed"), "headers": no_store},
            **_errors(503),
        }

    def form(schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": schema},
                "application/json": {"schema": schema},
            },
        }

    client_auth = {
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
    }
    token_param = {
        "type": "object",
        "required": ["token"],
        "properties": {
            "token": {"type": "string"},
            "token_type_hint": {"type": "string"},
            **client_auth,
        },
    }
    return {
        "/api/oauth/token": {
            "post": {
                "tags": ["proxy"],
                "security": [],
                "summary": "OAuth token endpoint: authorization_code (PKCE S256) and refresh_token",
                "requestBody": form(
                    {
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {"enum": ["authorization_code", "refresh_token"]},
                            "code": {"type": "string"},
                            "redirect_uri": {"type": "string"},
                            "code_verifier": {"type": "string"},
                            "refresh_token": {"type": "string"},
                            "scope": {"type": "string"},
                            **client_auth,
                        },
                    }
                ),
                "responses": {
                    "200": {
                        **_json(
                            {
                                "type": "object",
                                "required": [
                                    "access_token",
                                    "token_type",
                                    "expires_in",
                                    "refresh_token",
                                    "scope",
                                ],
                                "properties": {
                                    "access_token": {"type": "string"},
                                    "token_type": {"const": "Bearer"},
                                    "expires_in": {"type": "integer"},
                                    "refresh_token": {"type": "string"},
                                    "scope": {"type": "string"},
                                },
                            },
                            "Tokens",
                        ),
                        "headers": no_store,
                    },
                    **errors(),
                },
            }
        },
        "/api/oauth/revoke": {
            "post": {
                "tags": ["proxy"],
                "security": [],
                "summary": "RFC 7009 revocation (the client's own tokens; others are a no-op)",
                "requestBody": form(token_param),
                "responses": {"200": {"description": "Revoked (or nothing to revoke)"}, **errors()},
            }
        },
        "/api/oauth/introspect": {
            "post": {
                "tags": ["proxy"],
                "security": [],
                "summary": "RFC 7662 introspection of the client's own tokens",
                "requestBody": form(token_param),
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["active"],
                            "properties": {
                                "active": {"type": "boolean"},
                                "scope": {"type": "string"},
                                "client_id": {"type": "string"},
                                "sub": NULLABLE_STR,
                                "exp": {"type": "integer"},
                                "iat": {"type": "integer"},
                                "token_type": {"type": "string"},
                                "workspace_id": {"type": "string"},
                            },
                        },
                        "Introspection",
                    ),
                    **errors(),
                },
            }
        },
        "/.well-known/oauth-authorization-server": {
            "get": {
                "tags": ["proxy"],
                "security": [],
                "summary": "RFC 8414 authorization server metadata",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": [
                                "issuer",
                                "authorization_endpoint",
                                "token_endpoint",
                                "code_challenge_methods_supported",
                            ],
                        },
                        "Metadata",
                    )
                },
            }
        },
    }


def _oauth_paths(ws: dict[str, Any]) -> dict[str, Any]:
    """Admin routes of gateway.oauth.admin (404 NOT_FOUND when the config has no oauth: section)."""
    client_id = _param("client_id")
    no_content = {"description": "Deleted"}
    return {
        "/admin/oauth-apps": {
            "get": {
                "tags": ["admin"],
                "summary": "OAuth apps (an operator sees all, a workspace admin its own)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["apps"],
                            "properties": {"apps": {"type": "array", "items": _ref("OAuthApp")}},
                        },
                        "Apps",
                    ),
                    **_errors(*ADMIN_ERRORS),
                },
            },
            "post": {
                "tags": ["admin"],
                "summary": "Register an app; a confidential app's client_secret is returned once",
                "requestBody": _body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "redirect_uris"],
                        "properties": {
                            "name": {"type": "string"},
                            "redirect_uris": {"type": "array", "items": {"type": "string"}},
                            "scopes": {"type": "array", "items": {"type": "string"}},
                            "public": {"type": "boolean"},
                        },
                    }
                ),
                "responses": {
                    "201": _json(_ref("OAuthAppWithSecret"), "Registered"),
                    **_errors(*ADMIN_ERRORS),
                },
            },
        },
        "/admin/oauth-apps/{client_id}": {
            "parameters": [client_id],
            "get": {
                "tags": ["admin"],
                "summary": "An app, never its secret",
                "responses": {"200": _json(_ref("OAuthApp"), "App"), **_errors(*ADMIN_ERRORS)},
            },
            "delete": {
                "tags": ["admin"],
                "summary": "Delete an app and revoke every grant and token it holds",
                "responses": {"204": no_content, **_errors(*ADMIN_ERRORS)},
            },
        },
        "/admin/workspaces/{ws}/oauth-grants": {
            "parameters": [ws, _param("user", "query")],
            "get": {
                "tags": ["admin"],
                "summary": "Active OAuth grants in a workspace (optionally one user's)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["grants"],
                            "properties": {
                                "grants": {"type": "array", "items": _ref("OAuthGrant")}
                            },
                        },
                        "Grants",
                    ),
                    **_errors(*ADMIN_ERRORS),
                },
            },
        },
        "/admin/oauth-grants/{grant_id}": {
            "parameters": [_param("grant_id")],
            "delete": {
                "tags": ["admin"],
                "summary": "Revoke a grant and every token issued from it",
                "responses": {"204": no_content, **_errors(*ADMIN_ERRORS)},
            },
        },
    }


def install_admin(app: web.Application, gw: object) -> None:
    doc = document()

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(doc)

    app.router.add_get("/openapi.json", openapi)

"""Rendering: every refusal becomes JSON in the configured envelope, in this one place.

``default``: ``{"error": {"code", "message", "request_id"}}``.
``velt``: ``{"error": {"status", "message"}}`` with Google-style canonical status names, as Velt's
API answers. 401 and 403 carry ``WWW-Authenticate: Bearer`` per RFC 6750.
An :class:`~gateway.core.errors.OAuthError` is always RFC 6749 §5.2's ``{"error", "error_description"}``,
never cached (``Pragma: no-cache`` too), and a failed client authentication (401) challenges with
Basic when the client tried Basic.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.core.errors import (
    AuthenticationError,
    GatewayError,
    InsufficientScope,
    InvalidClient,
    MultipleCredentials,
    OAuthError,
    PermissionDenied,
)

__all__ = ["error_body", "error_response", "json_response", "raw_refusal"]

REALM = 'Bearer realm="gateway"'
VELT_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data, separators=(",", ":")).encode(),
        content_type="application/json",
        headers=headers,
    )


def error_body(err: GatewayError, request_id: str, envelope: str) -> dict[str, Any]:
    if isinstance(err, OAuthError):
        return {"error": err.error, "error_description": err.message}
    if envelope == "velt":
        status = (
            err.code if err.code == "INVALID_ARGUMENT" else VELT_STATUS.get(err.status, "UNKNOWN")
        )
        return {"error": {"status": status, "message": err.message}}
    body: dict[str, Any] = {"code": err.code, "message": err.message, "request_id": request_id}
    if isinstance(err, InsufficientScope):
        body["required_scopes"] = list(err.required)
    return {"error": body}


def _www_authenticate(err: GatewayError) -> str | None:
    if isinstance(err, InvalidClient):
        return 'Basic realm="oauth"' if err.basic else REALM
    if isinstance(err, OAuthError):
        return None
    if isinstance(err, AuthenticationError):
        if err.reason == "missing":
            return REALM
        return f'{REALM}, error="invalid_token", error_description="{err.message}"'
    if isinstance(err, InsufficientScope):
        return f'{REALM}, error="insufficient_scope", scope="{" ".join(err.required)}"'
    if isinstance(err, PermissionDenied):
        # Only a scope refusal is "insufficient_scope" (RFC 6750 §3.1); a foreign workspace, a
        # missing environment or a plan is not something more scopes would fix.
        return REALM
    if isinstance(err, MultipleCredentials):
        return f'{REALM}, error="invalid_request"'
    return None


def error_response(err: GatewayError, request_id: str, envelope: str) -> web.Response:
    headers = dict(err.headers)
    challenge = _www_authenticate(err)
    if challenge:
        headers["WWW-Authenticate"] = challenge
    headers["Cache-Control"] = "no-store"
    if isinstance(err, OAuthError):
        headers["Pragma"] = "no-cache"  # RFC 6749 §5.1
    return json_response(error_body(err, request_id, envelope), err.status, headers)


def raw_refusal(status: str, code: str, message: str, extra_headers: bytes = b"") -> bytes:
    """A complete HTTP/1.1 JSON error response as bytes, for answers written straight to a socket
    before any HTTP machinery runs (a connection over the cap, plain HTTP on a TLS port)."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n".encode()
        + extra_headers
        + b"Connection: close\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )

"""Reading an OAuth request off the wire, for every endpoint of :mod:`gateway.features.oauth.http`
and :mod:`gateway.features.oauth.consentpage`: a JSON or form body, the query, HTTP Basic client
credentials (each with RFC 6749's rules: strings only, nothing repeated), and the ``no-store``
headers every answer carries.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from gateway.core.errors import InvalidClient, OAuthError
from gateway.features.oauth.routes import MAX_BODY
from gateway.features.oauth.service import OAuthService

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["NO_STORE", "basic_credentials", "body_params", "query_params", "service_of"]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def service_of(gw: Gateway) -> OAuthService:
    return OAuthService(gw.store, gw.runtime.config)


async def body_params(request: web.Request) -> dict[str, str]:
    """A JSON object or an urlencoded form; every value a string, none repeated (RFC 6749 §3.2)."""
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise OAuthError("invalid_request", "The request body is too large.")
    ctype = request.content_type
    if ctype == "application/json":
        try:
            data = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            raise OAuthError("invalid_request", "The body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise OAuthError("invalid_request", "The body must be a JSON object.")
        for k, v in data.items():
            if not isinstance(v, str):
                raise OAuthError("invalid_request", f"{k} must be a string.")
        return data
    if ctype in ("application/x-www-form-urlencoded", ""):
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise OAuthError("invalid_request", "The body is not UTF-8.") from None
        out: dict[str, str] = {}
        for k, v in pairs:
            if k in out:
                raise OAuthError("invalid_request", f"{k} is repeated.")
            out[k] = v
        return out
    raise OAuthError("invalid_request", "Send application/json or a form body.")


def query_params(request: web.Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in request.query.items():
        if k in out:
            raise OAuthError("invalid_request", f"{k} is repeated.")
        out[k] = v
    return out


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """client_id and secret from ``Authorization: Basic`` (form-urlencoded per RFC 6749 §2.3.1)."""
    values = request.headers.getall("Authorization", ())
    if not values:
        return None
    if len(values) > 1:
        raise OAuthError("invalid_request", "Send one Authorization header.")
    scheme, _, rest = values[0].strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("Use HTTP Basic client authentication.", basic=True)
    try:
        decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("Malformed Basic credentials.", basic=True) from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise InvalidClient("Malformed Basic credentials.", basic=True)
    return unquote(user.replace("+", " ")), unquote(password.replace("+", " "))

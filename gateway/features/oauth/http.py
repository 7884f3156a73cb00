"""The authorization server's endpoints on the proxy listener (built-in handlers of the routes
:func:`gateway.features.oauth.routes.oauth_routes` adds for the ``oauth:`` section).

* consent (GET shows the page, POST records Approve/Deny): client_id and redirect_uri are checked
  first and their errors are shown, never redirected; then the user must be signed in with a
  session JWT (``Authorization: Bearer`` or the ``sessions.cookie`` cookie), else 401 or the
  configured login redirect; other errors go back to the verified redirect URI. The form is
  protected by a double-submit CSRF token (a SameSite=Strict, HttpOnly cookie that must equal the
  hidden field), and the page refuses to be framed.
* token, revoke, introspect: JSON or form bodies (:class:`gateway.management.bodies.OAuthTokenRequest`,
  :class:`~gateway.management.bodies.OAuthTokenParams`), client authentication; their errors are
  :class:`~gateway.core.errors.OAuthError`, rendered by :mod:`gateway.edge.responses` in RFC 6749 §5.2's
  envelope; answers carry ``Cache-Control: no-store``.
* metadata (RFC 8414) and a signed-in user's own grants (list, revoke).
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import secrets
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from aiohttp import web
from pydantic import ValidationError

from gateway.app import Gateway
from gateway.core.authz import TOKENS_READ, TOKENS_WRITE, Powers, authorize, covers, require_covers
from gateway.core.context import RequestContext
from gateway.core.errors import (
    AuthenticationError,
    GatewayError,
    InvalidClient,
    NotFound,
    OAuthError,
    PermissionDenied,
)
from gateway.edge.responses import json_response
from gateway.edge.wrap import GATEWAY
from gateway.features.oauth.service import AuthorizeRequest, OAuthService, grant_view
from gateway.features.oauth.store import ClientRecord
from gateway.management.bodies import Body, OAuthTokenParams, OAuthTokenRequest, invalid, parse
from gateway.pipeline.builtin import BuiltinHandler

__all__ = ["CSRF_COOKIE", "HANDLERS", "signed_in_user"]

CSRF_COOKIE = "gw_oauth_csrf"
MAX_BODY = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
PAGE_HEADERS = {
    **NO_STORE,
    "X-Frame-Options": "DENY",
    # No form-action: browsers apply it to the redirect after the POST, i.e. to the app's URI.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


P = TypeVar("P", bound=Body)


def _service(gw: Gateway) -> OAuthService:
    return OAuthService(gw.store, gw.runtime.config)


# -- request parsing ---------------------------------------------------------------------------------


async def _body_params(request: web.Request) -> dict[str, str]:
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


def _query_params(request: web.Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in request.query.items():
        if k in out:
            raise OAuthError("invalid_request", f"{k} is repeated.")
        out[k] = v
    return out


def _basic(request: web.Request) -> tuple[str, str] | None:
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


def _invalid_request(model: type[Body], exc: ValidationError) -> OAuthError:
    return OAuthError("invalid_request", invalid(model, exc).message)


async def _client_call(
    request: web.Request, model: type[P]
) -> tuple[OAuthService, ClientRecord, P, dict[str, str]]:
    """The authenticated client and its parameters; the client is checked first (RFC 6749 §5.2:
    a bad client is invalid_client whatever else is wrong)."""
    gw = request.app[GATEWAY]
    svc = _service(gw)
    params = await _body_params(request)
    client = await svc.authenticate_client(params, _basic(request))
    return svc, client, parse(model, params, _invalid_request), params


# -- token, revocation, introspection, metadata ------------------------------------------------------


async def token_endpoint(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    svc, client, _, params = await _client_call(request, OAuthTokenRequest)
    return json_response(await svc.token(client, params), headers=NO_STORE)


async def revoke_endpoint(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    svc, client, body, _ = await _client_call(request, OAuthTokenParams)
    await svc.revoke(client, body.token)
    return web.Response(status=200, headers=NO_STORE)


async def introspect_endpoint(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    svc, client, body, _ = await _client_call(request, OAuthTokenParams)
    return json_response(await svc.introspect(client, body.token), headers=NO_STORE)


async def metadata_endpoint(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    svc = _service(gw)
    issuer = svc.cfg.issuer or f"{request.scheme}://{request.host}"
    return json_response(svc.metadata(issuer))


# -- a user's grants -----------------------------------------------------------------------------------


async def grants_endpoint(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    svc = _service(gw)
    ident = ctx.identity
    if ident is None or ident.user_id is None:
        raise PermissionDenied("Listing app grants needs a user credential.", reason="no_user")
    # Grants are credentials too: the same decision as every token door (gateway.core.authz).
    rules = gw.runtime.config.scopes
    powers = Powers(gw.runtime.config, gw.runtime.workspaces)
    grant_id = ctx.params.get("grantId")
    if grant_id is None:
        authorize(rules, ident, all_of=[TOKENS_READ])
        grants = [
            g
            for g in await svc.active_grants(user_id=ident.user_id, workspace_id=ident.workspace.id)
            if covers(rules, ident, await powers.of_grant(g.scopes, g.user_id, ident.workspace))
        ]
        clients = {g.client_id: await svc.oauth.get_client(g.client_id) for g in grants}
        return json_response({"grants": [grant_view(g, clients[g.client_id]) for g in grants]})
    grant = await svc.oauth.get_grant(grant_id)
    if (
        grant is None
        or grant.revoked_at is not None
        or grant.user_id != ident.user_id
        or grant.workspace_id != ident.workspace.id
    ):
        raise NotFound("No such grant.", reason="grant")
    authorize(rules, ident, all_of=[TOKENS_WRITE])
    power = await powers.of_grant(grant.scopes, grant.user_id, ident.workspace)
    require_covers(rules, ident, power, "grant")
    await svc.revoke_grant(grant.id, "revoked_by_user", ident.user_id)
    return web.Response(status=204)


# -- consent -------------------------------------------------------------------------------------------


async def signed_in_user(gw: Gateway, request: web.Request) -> str | None:
    """The user id of a valid session JWT in the Authorization header or session cookie."""
    cfg = gw.runtime.config.sessions
    verifier = gw.session_verifier
    if cfg is None or verifier is None:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    jwt_value = value.strip() if scheme.lower() == "bearer" else None
    if not jwt_value and cfg.cookie:
        jwt_value = request.cookies.get(cfg.cookie)
    if not jwt_value:
        return None
    try:
        principal = await verifier(jwt_value)
    except AuthenticationError:
        return None
    return principal.user_id


def _redirect(uri: str, **params: str | None) -> web.Response:
    """``uri`` with ``params`` added to its query (kept as registered, RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    location = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return web.Response(status=302, headers={**NO_STORE, "Location": location})


def _page(status: int, title: str, body: str) -> web.Response:
    doc = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font:16px system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
        "button{font:inherit;padding:.5rem 1.2rem;margin-right:.5rem}li{margin:.2rem 0}"
        f"</style></head><body>{body}</body></html>"
    )
    return web.Response(status=status, text=doc, content_type="text/html", headers=PAGE_HEADERS)


def _error_page(status: int, err: GatewayError) -> web.Response:
    """The consent page's errors: shown to the user, never sent to an unverified redirect URI."""
    code = err.error if isinstance(err, OAuthError) else err.code
    return _page(
        status,
        "Authorization error",
        f"<h1>This authorization request cannot be completed</h1><p>{html.escape(err.message)}</p>"
        f"<p><code>{html.escape(code)}</code></p>",
    )


def _consent_form(
    req: AuthorizeRequest, workspaces: list[tuple[str, str]], csrf: str, action: str
) -> str:
    hidden = {
        "client_id": req.client.id,
        "redirect_uri": req.redirect_uri,
        "response_type": "code",
        "scope": " ".join(req.scopes),
        "state": req.state,
        "code_challenge": req.code_challenge,
        "code_challenge_method": req.code_challenge_method,
        "csrf_token": csrf,
    }
    fields = "".join(
        f'<input type=hidden name="{k}" value="{html.escape(v)}">'
        for k, v in hidden.items()
        if v is not None
    )
    options = "".join(
        f'<option value="{html.escape(ws_id)}">{html.escape(label)}</option>'
        for ws_id, label in workspaces
    )
    scopes = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in req.scopes)
    return (
        f"<h1>Authorize {html.escape(req.client.name)}</h1>"
        f"<p><strong>{html.escape(req.client.name)}</strong> wants to act for you with:</p>"
        f"<ul>{scopes}</ul>"
        f'<form method=post action="{html.escape(action)}">{fields}'
        f"<p><label>Workspace <select name=workspace id=workspace>{options}</select></label></p>"
        "<button type=submit name=decision value=approve id=approve>Approve</button>"
        "<button type=submit name=decision value=deny id=deny>Deny</button></form>"
        f"<p><small>You will be sent to {html.escape(req.redirect_uri)}</small></p>"
    )


async def _workspaces_for(
    gw: Gateway, request: web.Request, user_id: str
) -> dict[str, tuple[str, str]]:
    """workspace id -> (label, role) for the user's memberships; only the named one, if any."""
    rt = gw.runtime
    try:
        named = rt.workspaces.requested(request)
    except GatewayError:
        named = None  # a browser visit carries no workspace header: offer every membership
    out: dict[str, tuple[str, str]] = {}
    for m in await gw.store.list_memberships(user_id=user_id):
        ws = await gw.cache.get_workspace(m.workspace_id, "id")
        if ws is None or ws.deleted_at is not None:
            continue
        if named is not None and named not in (ws.id, ws.slug):
            continue
        out[ws.id] = (f"{ws.name} ({ws.slug})", m.role)
    return out


async def consent_endpoint(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    svc = _service(gw)
    try:
        params = _query_params(request) if request.method == "GET" else await _body_params(request)
        client, redirect_uri = await svc.check_client_and_redirect(params)
    except OAuthError as err:
        ctx.decision, ctx.reason = "OAUTH_ERROR", err.error
        return _error_page(400, err)

    user_id = await signed_in_user(gw, request)
    if user_id is None:
        ctx.decision, ctx.reason = "UNAUTHORIZED", "consent_signin"
        login = svc.cfg.login_url
        if login is not None and request.method == "GET":
            sep = "&" if "?" in login else "?"
            target = login + sep + "return_to=" + quote(request.path_qs, safe="")
            return web.Response(status=302, headers={**NO_STORE, "Location": target})
        raise AuthenticationError("Sign in to authorize this app.", reason="consent_signin")

    try:
        req = svc.check_authorize(client, redirect_uri, params)
    except OAuthError as err:
        ctx.decision, ctx.reason = "OAUTH_ERROR", err.error
        return _redirect(
            redirect_uri,
            error=err.error,
            error_description=err.message,
            state=params.get("state"),
        )

    workspaces = await _workspaces_for(gw, request, user_id)
    if not workspaces:
        ctx.decision, ctx.reason = "FORBIDDEN", "consent_no_workspace"
        return _error_page(
            403, PermissionDenied("You are not a member of a workspace this app could act in.")
        )

    if request.method == "GET":
        csrf = secrets.token_urlsafe(32)
        labels = [(ws_id, label) for ws_id, (label, _) in workspaces.items()]
        resp = _page(
            200, f"Authorize {client.name}", _consent_form(req, labels, csrf, request.path)
        )
        resp.set_cookie(
            CSRF_COOKIE,
            csrf,
            max_age=int(svc.cfg.code_ttl),
            path=request.path,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return resp

    # POST: the user's decision.
    form: Mapping[str, Any] = params
    sent, cookie = form.get("csrf_token") or "", request.cookies.get(CSRF_COOKIE) or ""
    if not sent or not cookie or not secrets.compare_digest(sent, cookie):
        ctx.decision, ctx.reason = "FORBIDDEN", "consent_csrf"
        return _error_page(
            403, PermissionDenied("The form expired or was not sent from the consent page.")
        )
    decision = form.get("decision")
    if decision == "deny":
        resp = _redirect(
            redirect_uri,
            error="access_denied",
            error_description="The user denied the request.",
            state=req.state,
        )
    elif decision == "approve":
        ws_id = form.get("workspace") or (next(iter(workspaces)) if len(workspaces) == 1 else "")
        if ws_id not in workspaces:
            return _error_page(400, OAuthError("invalid_request", "Choose one of your workspaces."))
        code, _ = await svc.approve(req, user_id, ws_id, workspaces[ws_id][1])
        resp = _redirect(redirect_uri, code=code, state=req.state)
    else:
        return _error_page(400, OAuthError("invalid_request", "decision must be approve or deny."))
    resp.del_cookie(CSRF_COOKIE, path=request.path)
    return resp


# Built-in handlers by the name routes give in `handler:` (gathered by gateway.pipeline.hooks.handlers_of).
HANDLERS: dict[str, BuiltinHandler] = {
    "oauth_token": token_endpoint,
    "oauth_revoke": revoke_endpoint,
    "oauth_introspect": introspect_endpoint,
    "oauth_metadata": metadata_endpoint,
    "oauth_grants": grants_endpoint,
    "oauth_consent": consent_endpoint,
}

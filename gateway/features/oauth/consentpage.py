"""The consent page of the authorization server (GET shows it, POST records Approve/Deny), a
built-in handler that :mod:`gateway.features.oauth.http` exports.

client_id and redirect_uri are checked first and their errors are shown, never redirected; then
the user must be signed in with a session JWT (``Authorization: Bearer`` or the
``sessions.cookie`` cookie), else 401 or the configured login redirect; other errors go back to
the verified redirect URI. The form is protected by a double-submit CSRF token (a
SameSite=Strict, HttpOnly cookie that must equal the hidden field), and the page refuses to be
framed.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from aiohttp import web

from gateway.core.context import RequestContext
from gateway.core.errors import AuthenticationError, GatewayError, OAuthError, PermissionDenied
from gateway.edge.wrap import GATEWAY
from gateway.features.oauth.consent import AuthorizeRequest
from gateway.features.oauth.wire import NO_STORE, body_params, query_params, service_of

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["consent_endpoint"]

CSRF_COOKIE = "gw_oauth_csrf"
PAGE_HEADERS = {
    **NO_STORE,
    "X-Frame-Options": "DENY",
    # No form-action: browsers apply it to the redirect after the POST, i.e. to the app's URI.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


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
    svc = service_of(gw)
    try:
        params = query_params(request) if request.method == "GET" else await body_params(request)
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

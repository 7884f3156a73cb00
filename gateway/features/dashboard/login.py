"""The dashboard's sign-in and sign-out pages: the HTTP side of :mod:`.signin`.

A sign-in link lands on a page with a button (GET never spends the link, so a mail scanner that
prefetches it cannot burn it); the button's POST spends the link and sets the sign-in cookie;
sign-out clears it.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from gateway.core.errors import AuthenticationError, CsrfFailed
from gateway.features.dashboard import render
from gateway.features.dashboard.common import (
    check_csrf,
    dashboard_config,
    field,
    form_of,
    handles_errors,
    html,
    origin_ok,
    require_signin,
    see_other,
    set_cookie,
)
from gateway.features.dashboard.signin import (
    COOKIE,
    csrf_ok,
    mint_signin_cookie,
    redeem_link,
    verify_link,
)

__all__ = ["login", "login_form", "logout"]

LOGIN_CSRF_COOKIE = "gw_dashboard_login"


@handles_errors
async def login_form(request: web.Request) -> web.StreamResponse:
    """The link's landing page: a button that signs in (GET never spends the link)."""
    gw, cfg = dashboard_config(request)
    value = request.query.get("t", "")
    user_id, _, _ = verify_link(cfg, value)
    user = await gw.store.get_user(user_id)
    if user is None:
        raise AuthenticationError("This sign-in link is for a user that no longer exists.")
    nonce = secrets.token_urlsafe(24)
    response = html(render.login(cfg.path, user=user, link=value, csrf=nonce))
    set_cookie(response, request, gw, cfg, LOGIN_CSRF_COOKIE, nonce, 600)
    return response


@handles_errors
async def login(request: web.Request) -> web.StreamResponse:
    gw, cfg = dashboard_config(request)
    form = await form_of(request)
    # Double-submit: the value must match the cookie set with the landing page, which a
    # cross-site form cannot read or send (SameSite=Strict): no signing victims into our account.
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not origin_ok(request) or not expected or not csrf_ok(expected, field(form, "csrf")):
        raise CsrfFailed(reason="login_csrf")
    user = await redeem_link(gw, cfg, field(form, "t") or "")
    response = see_other(cfg.path)
    set_cookie(response, request, gw, cfg, COOKIE, mint_signin_cookie(cfg, user), cfg.session_ttl)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=cfg.path)
    return response


@handles_errors
async def logout(request: web.Request) -> web.StreamResponse:
    gw, cfg = dashboard_config(request)
    form = await form_of(request)
    signin = await require_signin(request, gw)
    check_csrf(request, signin, form)
    response = see_other(cfg.path)
    response.del_cookie(COOKIE, path=cfg.path)
    return response

"""What every dashboard handler shares: the config lookup, the HTML and redirect answers with their
security headers, the error page, cookies, form parsing, and the sign-in and CSRF checks.

Handlers live in :mod:`.login` (sign-in and sign-out) and :mod:`.tokens` (the token page, create,
revoke); :mod:`.views` puts them on routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiDictProxy

from gateway.config import DashboardConfig
from gateway.core.context import RequestContext
from gateway.core.errors import (
    AuthenticationError,
    CsrfFailed,
    GatewayError,
    InvalidArgument,
    NotFound,
)
from gateway.edge.wrap import GATEWAY
from gateway.features.dashboard import render
from gateway.features.dashboard.signin import SignedIn, csrf_ok, is_https, signed_in

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = [
    "check_csrf",
    "dashboard_config",
    "field",
    "form_of",
    "handles_errors",
    "html",
    "origin_ok",
    "require_signin",
    "secure_headers",
    "see_other",
    "set_cookie",
    "wants_json",
]


def dashboard_config(request: web.Request) -> tuple[Gateway, DashboardConfig]:
    gw = request.app[GATEWAY]
    cfg = gw.runtime.config.dashboard
    if cfg is None:  # removed by a reload: the routes stay until restart, the page does not
        raise NotFound("The dashboard is not enabled.", reason="dashboard_disabled")
    return gw, cfg


def wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def secure_headers(response: web.StreamResponse) -> web.StreamResponse:
    h = response.headers
    h["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    h["X-Frame-Options"] = "DENY"
    h["X-Content-Type-Options"] = "nosniff"
    # The sign-in URL carries a (single-use) secret: never leak it in a Referer to another site.
    # (same-origin rather than no-referrer: with no-referrer, browsers send "Origin: null".)
    h["Referrer-Policy"] = "same-origin"
    h.setdefault("Cache-Control", "no-store")
    return response


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def handles_errors(fn: Handler) -> Handler:
    """Refusals as an HTML page for browsers; as the gateway's JSON error for the page's script."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            response = await fn(request)
        except GatewayError as err:
            if wants_json(request):
                raise
            ctx = RequestContext.of(request)
            ctx.decision, ctx.reason = err.code, err.reason
            cfg = request.app[GATEWAY].runtime.config.dashboard
            response = html(
                render.message(
                    cfg.path if cfg else "/",
                    title="Something went wrong" if err.status >= 500 else "Not allowed",
                    text=err.message,
                    code=err.code,
                ),
                err.status,
            )
        return secure_headers(response)

    return wrapper


def set_cookie(
    response: web.StreamResponse,
    request: web.Request,
    gw: Gateway,
    cfg: DashboardConfig,
    name: str,
    value: str,
    max_age: float,
) -> None:
    response.set_cookie(
        name,
        value,
        path=cfg.path,
        max_age=int(max_age),
        httponly=True,
        samesite="Strict",
        secure=is_https(request, gw),
    )


def origin_ok(request: web.Request) -> bool:
    """A browser's Origin, when sent, must be this host: a second line behind the CSRF token."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin.split("://", 1)[-1].lower() == (request.host or "").lower()


async def form_of(request: web.Request) -> MultiDictProxy[Any]:
    if request.content_length is not None and request.content_length > 64 * 1024:
        raise InvalidArgument("The form is too large.", reason="body_too_large")
    return await request.post()


def field(form: MultiDictProxy[Any], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


async def require_signin(request: web.Request, gw: Gateway) -> SignedIn:
    """Who is signed in to the dashboard; 401 (``dashboard_signed_out``) when nobody is."""
    signin = await signed_in(request, gw)
    if signin is None:
        raise AuthenticationError("Sign in to manage your tokens.", reason="dashboard_signed_out")
    return signin


def check_csrf(request: web.Request, signin: SignedIn, form: MultiDictProxy[Any]) -> None:
    given = request.headers.get("X-CSRF-Token") or field(form, "csrf")
    if not origin_ok(request) or not csrf_ok(signin.csrf, given):
        raise CsrfFailed(reason="csrf")

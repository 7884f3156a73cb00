"""The dashboard's HTTP handlers: the page, sign-in and sign-out, create and revoke.

Each handler only speaks HTTP and HTML; every token operation is
:class:`gateway.management.services.Services` (the layer behind the CLI, the admin API and the self-service
endpoints). Forms work without JavaScript (full page answers, a confirmation page before a
revoke); ``dashboard.js`` sends the same forms with ``Accept: application/json`` and gets JSON
plus the server-rendered table row, so rows are rendered in one place.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from gateway.config import DashboardConfig, TokenType
from gateway.core.context import RequestContext
from gateway.core.errors import (
    AuthenticationError,
    CsrfFailed,
    GatewayError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from gateway.core.identity import Identity
from gateway.core.timestamps import parse_expiry
from gateway.edge.responses import json_response
from gateway.edge.wrap import GATEWAY
from gateway.features.dashboard import render
from gateway.features.dashboard.signin import (
    COOKIE,
    SignedIn,
    csrf_ok,
    is_https,
    mint_session,
    redeem_link,
    signed_in,
    verify_link,
)
from gateway.management.adminapi import ADMIN_SCOPE
from gateway.management.audit import Actor
from gateway.management.services import Services, token_view
from gateway.store.base import Membership, TokenRecord, Workspace

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["Wrap", "add_routes"]


LOGIN_CSRF_COOKIE = "gw_dashboard_login"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Wrap = Callable[[Handler], Handler]


# -- helpers ---------------------------------------------------------------------------------------


def _cfg(request: web.Request) -> tuple[Gateway, DashboardConfig]:
    gw = request.app[GATEWAY]
    cfg = gw.runtime.config.dashboard
    if cfg is None:  # removed by a reload: the routes stay until restart, the page does not
        raise NotFound("The dashboard is not enabled.", reason="dashboard_disabled")
    return gw, cfg


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _secure_headers(response: web.StreamResponse) -> web.StreamResponse:
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


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def handles_errors(fn: Handler) -> Handler:
    """Refusals as an HTML page for browsers; as the gateway's JSON error for the page's script."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            response = await fn(request)
        except GatewayError as err:
            if _wants_json(request):
                raise
            ctx = RequestContext.of(request)
            ctx.decision, ctx.reason = err.code, err.reason
            cfg = request.app[GATEWAY].runtime.config.dashboard
            response = _html(
                render.message(
                    cfg.path if cfg else "/",
                    title="Something went wrong" if err.status >= 500 else "Not allowed",
                    text=err.message,
                    code=err.code,
                ),
                err.status,
            )
        return _secure_headers(response)

    return wrapper


def _cookie(
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


def _origin_ok(request: web.Request) -> bool:
    """A browser's Origin, when sent, must be this host: a second line behind the CSRF token."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin.split("://", 1)[-1].lower() == (request.host or "").lower()


async def _form(request: web.Request) -> MultiDictProxy[Any]:
    if request.content_length is not None and request.content_length > 64 * 1024:
        raise InvalidArgument("The form is too large.", reason="body_too_large")
    return await request.post()


def _field(form: MultiDictProxy[Any], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


async def _session(request: web.Request, gw: Gateway) -> SignedIn:
    session = await signed_in(request, gw)
    if session is None:
        raise AuthenticationError("Sign in to manage your tokens.", reason="dashboard_signed_out")
    return session


def _check_csrf(request: web.Request, session: SignedIn, form: MultiDictProxy[Any]) -> None:
    given = request.headers.get("X-CSRF-Token") or _field(form, "csrf")
    if not _origin_ok(request) or not csrf_ok(session.csrf, given):
        raise CsrfFailed(reason="csrf")


@dataclass(frozen=True, slots=True)
class Place:
    """The signed-in user inside the workspace they are looking at."""

    workspaces: list[tuple[Workspace, Membership]]
    workspace: Workspace
    membership: Membership
    # The signed-in user here, computed by the pipeline's workspace step (gateway.core.authz.Powers):
    # every create, list and revoke below is bounded by it.
    identity: Identity
    admin: bool
    grantable: list[str]
    types: list[TokenType]


def _creatable_types(services: Services, cfg: DashboardConfig) -> list[TokenType]:
    config = services.config
    if cfg.token_types:
        return [t for name in cfg.token_types if (t := config.token_type(name)) is not None]
    minted = [t for t in config.token_types if t.kind != "oauth_access"]
    personal = [t for t in minted if t.inherit_user_permissions]
    return personal or minted


async def _place(services: Services, cfg: DashboardConfig, user_id: str, key: str | None) -> Place:
    pairs: list[tuple[Workspace, Membership]] = []
    for m in await services.store.list_memberships(user_id=user_id):
        ws = await services.store.get_workspace(m.workspace_id, "id")
        if ws is not None and ws.deleted_at is None:
            pairs.append((ws, m))
    pairs.sort(key=lambda p: (p[0].name.lower(), p[0].id))
    if not pairs:
        raise NotFound("You are not a member of any workspace yet.", reason="no_workspace")
    if key:
        chosen = [p for p in pairs if key in (p[0].id, p[0].slug)]
        if not chosen:
            # Not a member (or no such workspace): the same answer, so ids cannot be probed.
            raise NotFound(f"No workspace {key!r}.", reason="workspace")
        ws, m = chosen[0]
    else:
        ws, m = pairs[0]
    rules = services.config.scopes
    held = rules.expand(services.config.roles.get(m.role, frozenset()))
    admin = ADMIN_SCOPE in held or (rules.superuser is not None and rules.superuser in held)
    return Place(
        workspaces=pairs,
        workspace=ws,
        membership=m,
        identity=await services.powers.of_user(user_id, ws),
        admin=admin,
        grantable=sorted(services.grantable_scopes(m.role)),
        types=_creatable_types(services, cfg),
    )


async def _visible_tokens(services: Services, place: Place, user_id: str) -> list[TokenRecord]:
    ws_id = place.workspace.id
    try:
        found = await services.list_tokens(
            ws_id, None if place.admin else user_id, caller=place.identity
        )
    except PermissionDenied:
        return []  # a role without tokens:read sees no tokens
    # OAuth access tokens live an hour and are managed as app grants, not here.
    items = [t for t in found if t.kind != "oauth_access"]
    return sorted(items, key=lambda t: (-t.created_at, t.id))


async def _creators(services: Services, items: list[TokenRecord]) -> dict[str, str]:
    """Who made each token, as an email when it was a user (else "cli", a token id, …)."""
    out: dict[str, str] = {}
    for t in items:
        who = t.created_by or t.user_id
        if who is None:
            out[t.id] = "—"
            continue
        user = await services.store.get_user(who)
        out[t.id] = user.email if user is not None and user.id == who else who
    return out


def _may_revoke(place: Place, t: TokenRecord, user_id: str) -> bool:
    return t.workspace_id == place.workspace.id and (place.admin or t.user_id == user_id)


def _row(
    cfg: DashboardConfig, place: Place, t: TokenRecord, creator: str, session: SignedIn
) -> str:
    return render.row(
        cfg.path,
        t,
        now=time.time(),
        admin=place.admin,
        creator=creator,
        can_revoke=_may_revoke(place, t, session.user.id),
        csrf=session.csrf,
        workspace_id=place.workspace.id,
    )


async def _page(
    request: web.Request,
    gw: Gateway,
    cfg: DashboardConfig,
    session: SignedIn,
    key: str | None,
    *,
    created: tuple[TokenRecord, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    services = Services.of_runtime(gw.store, gw.runtime)
    place = await _place(services, cfg, session.user.id, key)
    # This worker's pending last-used times first, so the page shows the latest.
    await gw.usage.flush()
    items = await _visible_tokens(services, place, session.user.id)
    creators = await _creators(services, items) if place.admin else {}
    rows = [_row(cfg, place, t, creators.get(t.id, ""), session) for t in items]
    text = render.page(
        cfg.path,
        user=session.user,
        csrf=session.csrf,
        place_workspaces=[ws for ws, _ in place.workspaces],
        workspace=place.workspace,
        role=place.membership.role,
        admin=place.admin,
        grantable=place.grantable,
        types=place.types,
        rows=rows,
        created=created,
        error=error,
    )
    return _html(text, status)


# -- handlers --------------------------------------------------------------------------------------


@handles_errors
async def page(request: web.Request) -> web.StreamResponse:
    gw, cfg = _cfg(request)
    session = await signed_in(request, gw)
    if session is None:
        if cfg.login_url:
            return web.Response(status=302, headers={"Location": cfg.login_url})
        return _html(render.signed_out(cfg.path), 401)
    return await _page(request, gw, cfg, session, request.query.get("workspace"))


@handles_errors
async def login_form(request: web.Request) -> web.StreamResponse:
    """The link's landing page: a button that signs in (GET never spends the link)."""
    gw, cfg = _cfg(request)
    value = request.query.get("t", "")
    user_id, _, _ = verify_link(cfg, value)
    user = await gw.store.get_user(user_id)
    if user is None:
        raise AuthenticationError("This sign-in link is for a user that no longer exists.")
    nonce = secrets.token_urlsafe(24)
    response = _html(render.login(cfg.path, user=user, link=value, csrf=nonce))
    _cookie(response, request, gw, cfg, LOGIN_CSRF_COOKIE, nonce, 600)
    return response


@handles_errors
async def login(request: web.Request) -> web.StreamResponse:
    gw, cfg = _cfg(request)
    form = await _form(request)
    # Double-submit: the value must match the cookie set with the landing page, which a
    # cross-site form cannot read or send (SameSite=Strict): no signing victims into our account.
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not _origin_ok(request) or not expected or not csrf_ok(expected, _field(form, "csrf")):
        raise CsrfFailed(reason="login_csrf")
    user = await redeem_link(gw, cfg, _field(form, "t") or "")
    response = _see_other(cfg.path)
    _cookie(response, request, gw, cfg, COOKIE, mint_session(cfg, user), cfg.session_ttl)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=cfg.path)
    return response


@handles_errors
async def logout(request: web.Request) -> web.StreamResponse:
    gw, cfg = _cfg(request)
    form = await _form(request)
    session = await _session(request, gw)
    _check_csrf(request, session, form)
    response = _see_other(cfg.path)
    response.del_cookie(COOKIE, path=cfg.path)
    return response


@handles_errors
async def create(request: web.Request) -> web.StreamResponse:
    gw, cfg = _cfg(request)
    form = await _form(request)
    session = await _session(request, gw)
    _check_csrf(request, session, form)
    services = Services.of_runtime(gw.store, gw.runtime)
    place = await _place(services, cfg, session.user.id, _field(form, "workspace"))
    type_name = _field(form, "type") or (place.types[0].name if place.types else None)
    chosen = next((t for t in place.types if t.name == type_name), None)
    if chosen is None:
        raise InvalidArgument("Choose one of the offered token types.", reason="type")
    scopes = [s for s in form.getall("scope", []) if isinstance(s, str)]
    try:
        if not scopes and not chosen.inherit_user_permissions:
            # A workspace key with no scopes could do nothing: surely a mistake.
            raise InvalidArgument("Choose at least one scope.", reason="scopes")
        record, plaintext = await services.create_token(
            workspace=place.workspace.id,
            name=_field(form, "name") or "",
            scopes=scopes or None,
            type=type_name,
            user=session.user.id,
            expires_at=parse_expiry(
                _field(form, "expires_in") or None, _field(form, "expires_at") or None, time.time()
            ),
            actor=Actor(id=session.user.id, address=request.remote),
            caller=place.identity,
        )
    except InvalidArgument as err:
        if _wants_json(request):
            raise
        return await _page(
            request, gw, cfg, session, place.workspace.id, error=err.message, status=400
        )
    if _wants_json(request):
        creator = session.user.email
        return json_response(
            {
                "token": token_view(record),
                "secret": plaintext,
                "row_html": _row(cfg, place, record, creator, session),
            },
            status=201,
            headers={"Cache-Control": "no-store"},
        )
    return await _page(
        request, gw, cfg, session, place.workspace.id, created=(record, plaintext), status=201
    )


@handles_errors
async def revoke(request: web.Request) -> web.StreamResponse:
    gw, cfg = _cfg(request)
    form = await _form(request)
    session = await _session(request, gw)
    _check_csrf(request, session, form)
    services = Services.of_runtime(gw.store, gw.runtime)
    place = await _place(services, cfg, session.user.id, _field(form, "workspace"))
    try:
        t: TokenRecord | None = await services.token(request.match_info["id"])
    except NotFound:
        t = None
    if t is None or t.kind == "oauth_access" or not _may_revoke(place, t, session.user.id):
        # Another member's token (for a non-admin) looks exactly like a missing one.
        raise NotFound("No such token.", reason="token")
    if _field(form, "confirm") != "yes":
        # The confirmation step, for browsers without JavaScript (the script asks in a dialog).
        return _html(
            render.confirm_revoke(cfg.path, t, csrf=session.csrf, workspace_id=place.workspace.id)
        )
    record = await services.revoke_token(
        t.id, Actor(id=session.user.id, address=request.remote), caller=place.identity
    )
    record = await services.shown(record)
    if _wants_json(request):
        creators = await _creators(services, [record]) if place.admin else {}
        return json_response(
            {
                "token": token_view(record),
                "row_html": _row(cfg, place, record, creators.get(record.id, ""), session),
            }
        )
    return _see_other(f"{cfg.path}?{urlencode({'workspace': place.workspace.id})}")


async def static(request: web.Request) -> web.StreamResponse:
    asset = render.STATIC.get(request.match_info["name"])
    if asset is None:
        raise NotFound(reason="static")
    body, content_type = asset
    response = web.Response(body=body, content_type=content_type)
    response.headers["Cache-Control"] = "no-cache"
    return _secure_headers(response)


def add_routes(app: web.Application, path: str, wrap: Wrap = lambda handler: handler) -> None:
    """The dashboard's pages under ``path``, each handler passed through ``wrap`` first."""
    r = app.router
    r.add_get(path, wrap(page))
    r.add_get(f"{path}/login", wrap(login_form))
    r.add_post(f"{path}/login", wrap(login))
    r.add_post(f"{path}/logout", wrap(logout))
    r.add_post(f"{path}/tokens", wrap(create))
    r.add_post(path + "/tokens/{id}/revoke", wrap(revoke))
    r.add_get(path + "/static/{name}", wrap(static))

"""The dashboard's token page and its two forms: list, create and revoke the signed-in user's tokens.

Each handler only speaks HTTP and HTML; every token operation is
:class:`gateway.management.services.Services` (the layer behind the CLI, the admin API and the self-service
endpoints). Forms work without JavaScript (full page answers, a confirmation page before a
revoke); ``dashboard.js`` sends the same forms with ``Accept: application/json`` and gets JSON
plus the server-rendered table row, so rows are rendered in one place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from gateway.config import DashboardConfig, TokenType
from gateway.core.errors import InvalidArgument, NotFound, PermissionDenied
from gateway.core.identity import Identity
from gateway.core.timestamps import parse_expiry
from gateway.edge.responses import json_response
from gateway.features.dashboard import render
from gateway.features.dashboard.common import (
    check_csrf,
    dashboard_config,
    field,
    form_of,
    handles_errors,
    html,
    require_signin,
    see_other,
    wants_json,
)
from gateway.features.dashboard.signin import SignedIn, signed_in
from gateway.management.adminapi import ADMIN_SCOPE
from gateway.management.audit import Actor
from gateway.management.services import Services, token_view
from gateway.store.base import Membership, TokenRecord, Workspace

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["create", "page", "revoke"]


@dataclass(frozen=True, slots=True)
class Place:
    """The signed-in user inside the workspace they are looking at."""

    workspaces: list[tuple[Workspace, Membership]]
    workspace: Workspace
    membership: Membership
    # The signed-in user here, computed by the pipeline's workspace step (gateway.pipeline.authz.Powers):
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


def _row(cfg: DashboardConfig, place: Place, t: TokenRecord, creator: str, signin: SignedIn) -> str:
    return render.row(
        cfg.path,
        t,
        now=time.time(),
        admin=place.admin,
        creator=creator,
        can_revoke=_may_revoke(place, t, signin.user.id),
        csrf=signin.csrf,
        workspace_id=place.workspace.id,
    )


async def _page(
    request: web.Request,
    gw: Gateway,
    cfg: DashboardConfig,
    signin: SignedIn,
    key: str | None,
    *,
    created: tuple[TokenRecord, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    services = Services.of_runtime(gw.store, gw.runtime)
    place = await _place(services, cfg, signin.user.id, key)
    # This worker's pending last-used times first, so the page shows the latest.
    await gw.usage.flush()
    items = await _visible_tokens(services, place, signin.user.id)
    creators = await _creators(services, items) if place.admin else {}
    rows = [_row(cfg, place, t, creators.get(t.id, ""), signin) for t in items]
    text = render.page(
        cfg.path,
        user=signin.user,
        csrf=signin.csrf,
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
    return html(text, status)


# -- handlers --------------------------------------------------------------------------------------


@handles_errors
async def page(request: web.Request) -> web.StreamResponse:
    gw, cfg = dashboard_config(request)
    signin = await signed_in(request, gw)
    if signin is None:
        if cfg.login_url:
            return web.Response(status=302, headers={"Location": cfg.login_url})
        return html(render.signed_out(cfg.path), 401)
    return await _page(request, gw, cfg, signin, request.query.get("workspace"))


@handles_errors
async def create(request: web.Request) -> web.StreamResponse:
    gw, cfg = dashboard_config(request)
    form = await form_of(request)
    signin = await require_signin(request, gw)
    check_csrf(request, signin, form)
    services = Services.of_runtime(gw.store, gw.runtime)
    place = await _place(services, cfg, signin.user.id, field(form, "workspace"))
    type_name = field(form, "type") or (place.types[0].name if place.types else None)
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
            name=field(form, "name") or "",
            scopes=scopes or None,
            type=type_name,
            user=signin.user.id,
            expires_at=parse_expiry(
                field(form, "expires_in") or None, field(form, "expires_at") or None, time.time()
            ),
            actor=Actor(id=signin.user.id, address=request.remote),
            caller=place.identity,
        )
    except InvalidArgument as err:
        if wants_json(request):
            raise
        return await _page(
            request, gw, cfg, signin, place.workspace.id, error=err.message, status=400
        )
    if wants_json(request):
        creator = signin.user.email
        return json_response(
            {
                "token": token_view(record),
                "secret": plaintext,
                "row_html": _row(cfg, place, record, creator, signin),
            },
            status=201,
            headers={"Cache-Control": "no-store"},
        )
    return await _page(
        request, gw, cfg, signin, place.workspace.id, created=(record, plaintext), status=201
    )


@handles_errors
async def revoke(request: web.Request) -> web.StreamResponse:
    gw, cfg = dashboard_config(request)
    form = await form_of(request)
    signin = await require_signin(request, gw)
    check_csrf(request, signin, form)
    services = Services.of_runtime(gw.store, gw.runtime)
    place = await _place(services, cfg, signin.user.id, field(form, "workspace"))
    try:
        t: TokenRecord | None = await services.token(request.match_info["id"])
    except NotFound:
        t = None
    if t is None or t.kind == "oauth_access" or not _may_revoke(place, t, signin.user.id):
        # Another member's token (for a non-admin) looks exactly like a missing one.
        raise NotFound("No such token.", reason="token")
    if field(form, "confirm") != "yes":
        # The confirmation step, for browsers without JavaScript (the script asks in a dialog).
        return html(
            render.confirm_revoke(cfg.path, t, csrf=signin.csrf, workspace_id=place.workspace.id)
        )
    record = await services.revoke_token(
        t.id, Actor(id=signin.user.id, address=request.remote), caller=place.identity
    )
    record = await services.shown(record)
    if wants_json(request):
        creators = await _creators(services, [record]) if place.admin else {}
        return json_response(
            {
                "token": token_view(record),
                "row_html": _row(cfg, place, record, creators.get(record.id, ""), signin),
            }
        )
    return see_other(f"{cfg.path}?{urlencode({'workspace': place.workspace.id})}")

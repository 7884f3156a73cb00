"""Admin API routes for OAuth apps and grants (admin listener), on top of gateway.management.adminapi's
caller rules: an operator token sees every app and grant; a workspace admin registers apps owned
by its workspace and sees only those, and the grants made in its workspace. Anything else is 404.
Listing needs ``tokens:read``, registering, deleting and revoking ``tokens:write``; an app may not
ask for a scope its registrar lacks, and a grant whose power exceeds the caller's cannot be
revoked (:mod:`gateway.pipeline.authz`).

    GET/POST    /admin/oauth-apps                   {"name", "redirect_uris", "scopes", "public"}
    GET/DELETE  /admin/oauth-apps/{client_id}
    GET         /admin/workspaces/{ws}/oauth-grants?user=ID
    DELETE      /admin/oauth-grants/{grant_id}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.core.errors import InvalidArgument, NotFound
from gateway.edge.responses import json_response
from gateway.edge.wrap import GATEWAY
from gateway.features.oauth.apps import client_view, grant_view
from gateway.features.oauth.service import OAuthService
from gateway.features.oauth.store import ClientRecord
from gateway.features.oauth.wire import service_of
from gateway.management.adminapi import Caller, caller_of, workspace_of
from gateway.management.bodies import CreateOAuthApp, Route, add_routes, read_body
from gateway.management.directory import USER_ID
from gateway.pipeline.authz import TOKENS_READ, TOKENS_WRITE, covers, require_covers

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["ROUTES", "install_admin"]


def _service(request: web.Request) -> OAuthService:
    gw = request.app[GATEWAY]
    if gw.runtime.config.oauth is None:
        raise NotFound("OAuth is not configured on this gateway.", reason="oauth_off")
    return service_of(gw)


def _app_power(svc: OAuthService, scopes: Iterable[str]) -> frozenset[str]:
    """What an app may be granted: its scopes, or every known scope when it lists none."""
    rules = svc.config.scopes
    return rules.expand(frozenset(scopes)) if scopes else rules.known


async def _app(caller: Caller, svc: OAuthService, client_id: str) -> ClientRecord:
    c = await svc.oauth.get_client(client_id)
    if c is None or not (caller.operator or c.workspace_id == caller.home.id):
        raise NotFound("No such OAuth app.", reason="oauth_client")
    return c


async def list_apps(request: web.Request) -> web.Response:
    caller = await caller_of(request, needs=TOKENS_READ)
    svc = _service(request)
    apps = await svc.oauth.list_clients(workspace_id=None if caller.operator else caller.home.id)
    return json_response({"apps": [client_view(c) for c in apps]})


async def create_app(request: web.Request) -> web.Response:
    caller = await caller_of(request, needs=TOKENS_WRITE)
    svc = _service(request)
    body = await read_body(request, CreateOAuthApp)
    # An app never asks users for more than its registrar holds.
    require_covers(svc.config.scopes, caller.identity, _app_power(svc, body.scopes), "app")
    client, secret = await svc.create_client(
        body.name,
        body.redirect_uris,
        body.scopes,
        public=body.public,
        workspace_id=None if caller.operator else caller.home.id,
    )
    view = client_view(client)
    if secret is not None:
        view["client_secret"] = secret  # shown once
    return json_response(view, status=201)


async def get_app(request: web.Request) -> web.Response:
    caller = await caller_of(request, needs=TOKENS_READ)
    svc = _service(request)
    return json_response(client_view(await _app(caller, svc, request.match_info["client_id"])))


async def delete_app(request: web.Request) -> web.Response:
    caller = await caller_of(request, needs=TOKENS_WRITE)
    svc = _service(request)
    c = await _app(caller, svc, request.match_info["client_id"])
    # Deleting an app ends every grant made to it: only a caller whose power covers what the app
    # may be granted may do that.
    require_covers(svc.config.scopes, caller.identity, _app_power(svc, c.scopes), "app")
    await svc.delete_client(c.id)
    return web.Response(status=204)


async def list_grants(request: web.Request) -> web.Response:
    caller = await caller_of(request, needs=TOKENS_READ)
    svc = _service(request)
    ws = await workspace_of(caller, request.match_info["ws"])
    user = request.query.get("user")
    if user is not None and not USER_ID.match(user):
        raise InvalidArgument(
            "user must be a user id (1-64 letters, digits, '-', '_').", reason="user"
        )
    grants = await svc.active_grants(user_id=user, workspace_id=ws.id)
    out = []
    for g in grants:
        power = await caller.services.powers.of_grant(g.scopes, g.user_id, ws)
        if covers(svc.config.scopes, caller.identity, power):
            out.append(grant_view(g, await svc.oauth.get_client(g.client_id)))
    return json_response({"grants": out})


async def delete_grant(request: web.Request) -> web.Response:
    caller = await caller_of(request, needs=TOKENS_WRITE)
    svc = _service(request)
    g = await svc.oauth.get_grant(request.match_info["grant_id"])
    if g is None or g.revoked_at is not None:
        raise NotFound("No such grant.", reason="grant")
    ws = await workspace_of(caller, g.workspace_id)  # 404 unless the caller administers it
    power = await caller.services.powers.of_grant(g.scopes, g.user_id, ws)
    require_covers(svc.config.scopes, caller.identity, power, "grant")
    await svc.revoke_grant(g.id, "revoked_by_admin", caller.actor.id)
    return web.Response(status=204)


ROUTES = (
    Route("GET", "/admin/oauth-apps", list_apps),
    Route("POST", "/admin/oauth-apps", create_app, CreateOAuthApp),
    Route("GET", "/admin/oauth-apps/{client_id}", get_app),
    Route("DELETE", "/admin/oauth-apps/{client_id}", delete_app),
    Route("GET", "/admin/workspaces/{ws}/oauth-grants", list_grants),
    Route("DELETE", "/admin/oauth-grants/{grant_id}", delete_grant),
)


def install_admin(app: web.Application, gw: Gateway) -> None:
    add_routes(app, ROUTES)

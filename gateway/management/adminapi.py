"""The admin API: workspaces, users, memberships, tokens and the audit log, on the admin listener.

Every call carries a token (``Authorization: Bearer …`` or the configured credential header),
authenticated by the same :class:`~gateway.pipeline.authn.Authenticator` as the proxy and bound to
its workspace by the same workspace step. A token administers its **own** workspace when its
scopes there include ``workspace:admin``, ``tokens:read``/``tokens:write`` (token and OAuth
endpoints only) or the superuser scope; a superuser token of the config's ``operator_workspace``
administers every workspace and may create workspaces. Whatever it creates or touches is bounded
by its own scopes (:mod:`gateway.pipeline.authz`): no token it mints, rotates or revokes, and no role it
assigns, holds a scope it lacks. Anything else is 403; a workspace or token the caller may not
administer is 404, so ids cannot be probed. All work is done by
:class:`gateway.management.services.Services`, the layer the CLI uses too.

    GET/POST   /admin/workspaces                       (operator)
    GET        /admin/workspaces/{ws}
    PATCH      /admin/workspaces/{ws}      {"plan"}    (operator)
    DELETE     /admin/workspaces/{ws}                  (operator)
    POST       /admin/users                {"email", "name"}
    GET        /admin/workspaces/{ws}/members
    PUT/DELETE /admin/workspaces/{ws}/members/{user}   {"role"}
    GET/POST   /admin/workspaces/{ws}/tokens
    GET        /admin/tokens/{id}
    POST       /admin/tokens/{id}/revoke
    POST       /admin/tokens/{id}/rotate   {"grace"}
    GET        /admin/workspaces/{ws}/audit?limit=N
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.core.durations import parse_duration
from gateway.core.errors import InvalidArgument, NotFound, PermissionDenied
from gateway.core.identity import Identity
from gateway.core.timestamps import iso, parse_expiry
from gateway.edge.responses import json_response
from gateway.edge.wrap import GATEWAY
from gateway.management.audit import Actor, audit_view
from gateway.management.bodies import (
    CreateToken,
    CreateUser,
    CreateWorkspace,
    PatchWorkspace,
    PutMember,
    RotateToken,
    Route,
    add_routes,
    read_body,
)
from gateway.management.services import Services, token_view
from gateway.pipeline.authz import TOKENS_READ, TOKENS_WRITE, authorize, permits
from gateway.store.base import TokenRecord, Workspace

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = [
    "ADMIN_SCOPE",
    "ROUTES",
    "Caller",
    "caller_of",
    "install_admin",
    "workspace_of",
]

ADMIN_SCOPE = "workspace:admin"


@dataclass(frozen=True, slots=True)
class Caller:
    home: Workspace
    operator: bool
    actor: Actor
    services: Services
    identity: Identity

    def may_admin(self, ws: Workspace) -> bool:
        return self.operator or ws.id == self.home.id


async def caller_of(request: web.Request, *, needs: str = ADMIN_SCOPE) -> Caller:
    """The admin API's caller: authenticated and bound to its workspace by the pipeline's own
    steps, holding ``needs`` (``workspace:admin`` or ``tokens:read``/``tokens:write``)."""
    gw: Gateway = request.app[GATEWAY]
    rt = gw.runtime
    principal = await rt.authenticator.authenticate(request)
    token = principal.token
    if token is None:
        raise PermissionDenied("The admin API takes a token credential.", reason="admin_no_token")
    if principal.token_type is not None and principal.token_type.routes:
        # A type limited to some routes (a public browser key) is no admin credential.
        raise PermissionDenied(
            f"{principal.token_type.name} credentials may not use the admin API.",
            reason="type_route",
        )
    home = await gw.cache.get_workspace(token.workspace_id, "id")
    if home is None or home.deleted_at is not None:
        raise PermissionDenied(reason="admin_workspace_gone")
    identity = await rt.workspaces.bind(principal, home)
    rules = rt.config.scopes
    su = rules.superuser
    superuser = su is not None and su in identity.scopes
    if needs == ADMIN_SCOPE and not permits(rules, identity.scopes, ADMIN_SCOPE):
        raise PermissionDenied(
            f"The admin API needs {ADMIN_SCOPE} or {su or 'the superuser scope'}.",
            reason="admin_scope",
        )
    authorize(rules, identity, all_of=[needs])
    op = rt.config.operator_workspace
    operator = superuser and op is not None and op in (home.id, home.slug)
    actor = Actor(id=token.id, address=request.remote)
    return Caller(home, operator, actor, Services.of_runtime(gw.store, rt), identity)


async def workspace_of(caller: Caller, key: str) -> Workspace:
    try:
        ws = await caller.services.workspace(key)
    except NotFound:
        ws = None
    if ws is None or not caller.may_admin(ws):
        raise NotFound(f"No workspace {key!r}.", reason="workspace")
    return ws


def _operator(caller: Caller) -> None:
    if not caller.operator:
        raise PermissionDenied("Only an operator token may do this.", reason="admin_operator")


def _ws_view(ws: Workspace) -> dict[str, Any]:
    return {
        "id": ws.id,
        "slug": ws.slug,
        "name": ws.name,
        "plan": ws.plan,
        "created_at": iso(ws.created_at),
    }


# -- workspaces ------------------------------------------------------------------------------------


async def list_workspaces(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    _operator(caller)
    items = await caller.services.store.list_workspaces()
    return json_response({"workspaces": [_ws_view(w) for w in items if w.deleted_at is None]})


async def create_workspace(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    _operator(caller)
    body = await read_body(request, CreateWorkspace)
    ws = await caller.services.create_workspace(body.name, body.slug, body.id, body.plan or "free")
    return json_response(_ws_view(ws), status=201)


async def get_workspace(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    return json_response(_ws_view(await workspace_of(caller, request.match_info["ws"])))


async def patch_workspace(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    _operator(caller)
    ws = await workspace_of(caller, request.match_info["ws"])
    body = await read_body(request, PatchWorkspace)
    ws = await caller.services.set_plan(ws.id, body.plan)
    return json_response(_ws_view(ws))


async def delete_workspace(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    _operator(caller)
    ws = await workspace_of(caller, request.match_info["ws"])
    await caller.services.delete_workspace(ws.id)
    return web.Response(status=204)


# -- users and members -----------------------------------------------------------------------------


async def create_user(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    body = await read_body(request, CreateUser)
    user = await caller.services.create_user(body.email, body.name)
    return json_response({"id": user.id, "email": user.email, "name": user.name}, status=201)


async def list_members(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    ws = await workspace_of(caller, request.match_info["ws"])
    members = await caller.services.store.list_memberships(workspace_id=ws.id)
    return json_response(
        {
            "members": [
                {"user_id": m.user_id, "role": m.role, "created_at": iso(m.created_at)}
                for m in members
            ]
        }
    )


async def put_member(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    ws = await workspace_of(caller, request.match_info["ws"])
    role = (await read_body(request, PutMember)).role
    m = await caller.services.add_member(
        ws.id, request.match_info["user"], role, caller=caller.identity
    )
    return json_response({"user_id": m.user_id, "workspace_id": m.workspace_id, "role": m.role})


async def delete_member(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    ws = await workspace_of(caller, request.match_info["ws"])
    user = request.match_info["user"]
    if not await caller.services.remove_member(ws.id, user, caller.actor, caller=caller.identity):
        raise NotFound("Not a member.", reason="member")
    return web.Response(status=204)


# -- tokens ----------------------------------------------------------------------------------------


async def list_tokens(request: web.Request) -> web.Response:
    caller = await caller_of(request, needs=TOKENS_READ)
    ws = await workspace_of(caller, request.match_info["ws"])
    tokens = await caller.services.list_tokens(ws.id, caller=caller.identity)
    return json_response({"tokens": [token_view(t) for t in tokens]})


async def create_token(request: web.Request) -> web.Response:
    caller = await caller_of(request, needs=TOKENS_WRITE)
    ws = await workspace_of(caller, request.match_info["ws"])
    body = await read_body(request, CreateToken)
    record, plaintext = await caller.services.create_token(
        workspace=ws.id,
        name=body.name,
        scopes=body.scopes,
        type=body.type,
        user=body.user,
        expires_at=parse_expiry(body.expires_in, body.expires_at, time.time()),
        allowed_domains=body.allowed_domains,
        actor=caller.actor,
        caller=caller.identity,
    )
    return json_response({**token_view(record), "token": plaintext}, status=201)


async def _token(caller: Caller, token_id: str) -> TokenRecord:
    try:
        t = await caller.services.token(token_id)
    except NotFound:
        t = None
    if t is None:
        raise NotFound("No such token.", reason="token")
    await workspace_of(caller, t.workspace_id)  # 404 unless the caller administers its workspace
    return t


async def get_token(request: web.Request) -> web.Response:
    caller = await caller_of(request, needs=TOKENS_READ)
    t = await _token(caller, request.match_info["id"])
    await caller.services.may_manage(caller.identity, t, TOKENS_READ)
    return json_response(token_view(await caller.services.shown(t)))


async def revoke_token(request: web.Request) -> web.Response:
    caller = await caller_of(request, needs=TOKENS_WRITE)
    t = await _token(caller, request.match_info["id"])
    record = await caller.services.revoke_token(t.id, caller.actor, caller=caller.identity)
    return json_response(token_view(await caller.services.shown(record)))


async def rotate_token(request: web.Request) -> web.Response:
    caller = await caller_of(request, needs=TOKENS_WRITE)
    t = await _token(caller, request.match_info["id"])
    body = await read_body(request, RotateToken) if request.can_read_body else RotateToken()
    grace = parse_duration(body.grace or "1h")
    record, plaintext = await caller.services.rotate_token(
        t.id, grace, caller.actor, caller=caller.identity
    )
    return json_response({**token_view(await caller.services.shown(record)), "token": plaintext})


async def audit(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    ws = await workspace_of(caller, request.match_info["ws"])
    raw = request.query.get("limit", "100")
    # As the schema says: an integer from 1 to 1000; anything else is refused, not clamped.
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise InvalidArgument("limit must be an integer from 1 to 1000.", reason="limit")
    limit = int(raw)
    events = await caller.services.store.list_audit(workspace_id=ws.id, limit=limit)
    return json_response({"events": [{**audit_view(e), "detail": e.detail} for e in events]})


ROUTES = (
    Route("GET", "/admin/workspaces", list_workspaces),
    Route("POST", "/admin/workspaces", create_workspace, CreateWorkspace),
    Route("GET", "/admin/workspaces/{ws}", get_workspace),
    Route("PATCH", "/admin/workspaces/{ws}", patch_workspace, PatchWorkspace),
    Route("DELETE", "/admin/workspaces/{ws}", delete_workspace),
    Route("POST", "/admin/users", create_user, CreateUser),
    Route("GET", "/admin/workspaces/{ws}/members", list_members),
    Route("PUT", "/admin/workspaces/{ws}/members/{user}", put_member, PutMember),
    Route("DELETE", "/admin/workspaces/{ws}/members/{user}", delete_member),
    Route("GET", "/admin/workspaces/{ws}/tokens", list_tokens),
    Route("POST", "/admin/workspaces/{ws}/tokens", create_token, CreateToken),
    Route("GET", "/admin/tokens/{id}", get_token),
    Route("POST", "/admin/tokens/{id}/revoke", revoke_token),
    Route("POST", "/admin/tokens/{id}/rotate", rotate_token, RotateToken),
    Route("GET", "/admin/workspaces/{ws}/audit", audit),
)


def install_admin(app: web.Application, gw: Gateway) -> None:
    add_routes(app, ROUTES)

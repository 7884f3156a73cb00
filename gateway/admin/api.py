"""The admin API: workspaces, users, memberships, tokens and the audit log, on the admin listener.

Every call carries a token (``Authorization: Bearer …`` or the configured credential header),
authenticated by the same :class:`~gateway.pipeline.authn.Authenticator` as the proxy. A token
administers its **own** workspace when its scopes there include ``workspace:admin`` or the
superuser scope; a superuser token of the config's ``operator_workspace`` administers every
workspace and may create workspaces. Anything else is 403; a workspace or token the caller may
not administer is 404, so ids cannot be probed. All work is done by
:class:`gateway.services.Services`, the layer the CLI uses too.

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

from gateway.app import GATEWAY
from gateway.errors import InvalidArgument, NotFound, PermissionDenied
from gateway.responses import json_response
from gateway.selfservice import read_json_object
from gateway.services import Actor, Services, iso, parse_duration, parse_expiry, token_view
from gateway.store.base import Workspace

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["install_admin"]

ADMIN_SCOPE = "workspace:admin"


@dataclass(frozen=True, slots=True)
class Caller:
    home: Workspace
    operator: bool
    actor: Actor
    services: Services

    def may_admin(self, ws: Workspace) -> bool:
        return self.operator or ws.id == self.home.id


async def _caller(request: web.Request) -> Caller:
    gw: Gateway = request.app[GATEWAY]
    rt = gw.runtime
    principal = await rt.authenticator.authenticate(request)
    token = principal.token
    if token is None:
        raise PermissionDenied("The admin API takes a token credential.", reason="admin_no_token")
    home = await gw.cache.get_workspace(token.workspace_id, "id")
    if home is None or home.deleted_at is not None:
        raise PermissionDenied(reason="admin_workspace_gone")
    identity = await rt.workspaces.bind(principal, home)
    su = rt.config.scopes.superuser
    superuser = su is not None and su in identity.scopes
    if not (superuser or ADMIN_SCOPE in identity.scopes):
        raise PermissionDenied(
            f"The admin API needs {ADMIN_SCOPE} or {su or 'the superuser scope'}.",
            reason="admin_scope",
        )
    op = rt.config.operator_workspace
    operator = superuser and op is not None and op in (home.id, home.slug)
    actor = Actor(id=token.id, address=request.remote)
    return Caller(home, operator, actor, Services(gw.store, rt.config))


async def _workspace(caller: Caller, key: str) -> Workspace:
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


def _str(body: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise InvalidArgument(f"{key} is required.", reason=key)
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{key} must be a string.", reason=key)
    return value


def _str_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{key} must be a list of strings.", reason=key)
    return value


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidArgument(f"Unknown field: {extra[0]}.", reason="unknown_field")


# -- workspaces ------------------------------------------------------------------------------------


async def list_workspaces(request: web.Request) -> web.Response:
    caller = await _caller(request)
    _operator(caller)
    items = await caller.services.store.list_workspaces()
    return json_response({"workspaces": [_ws_view(w) for w in items if w.deleted_at is None]})


async def create_workspace(request: web.Request) -> web.Response:
    caller = await _caller(request)
    _operator(caller)
    body = await read_json_object(request)
    _only(body, {"name", "slug", "id", "plan"})
    ws = await caller.services.create_workspace(
        _str(body, "name", True) or "",
        _str(body, "slug"),
        _str(body, "id"),
        _str(body, "plan") or "free",
    )
    return json_response(_ws_view(ws), status=201)


async def get_workspace(request: web.Request) -> web.Response:
    caller = await _caller(request)
    return json_response(_ws_view(await _workspace(caller, request.match_info["ws"])))


async def patch_workspace(request: web.Request) -> web.Response:
    caller = await _caller(request)
    _operator(caller)
    ws = await _workspace(caller, request.match_info["ws"])
    body = await read_json_object(request)
    _only(body, {"plan"})
    ws = await caller.services.set_plan(ws.id, _str(body, "plan", True) or "")
    return json_response(_ws_view(ws))


async def delete_workspace(request: web.Request) -> web.Response:
    caller = await _caller(request)
    _operator(caller)
    ws = await _workspace(caller, request.match_info["ws"])
    await caller.services.delete_workspace(ws.id)
    return web.Response(status=204)


# -- users and members -----------------------------------------------------------------------------


async def create_user(request: web.Request) -> web.Response:
    caller = await _caller(request)
    body = await read_json_object(request)
    _only(body, {"email", "name"})
    user = await caller.services.create_user(_str(body, "email", True) or "", _str(body, "name"))
    return json_response({"id": user.id, "email": user.email, "name": user.name}, status=201)


async def list_members(request: web.Request) -> web.Response:
    caller = await _caller(request)
    ws = await _workspace(caller, request.match_info["ws"])
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
    caller = await _caller(request)
    ws = await _workspace(caller, request.match_info["ws"])
    body = await read_json_object(request)
    _only(body, {"role"})
    m = await caller.services.add_member(
        ws.id, request.match_info["user"], _str(body, "role", True) or ""
    )
    return json_response({"user_id": m.user_id, "workspace_id": m.workspace_id, "role": m.role})


async def delete_member(request: web.Request) -> web.Response:
    caller = await _caller(request)
    ws = await _workspace(caller, request.match_info["ws"])
    if not await caller.services.remove_member(ws.id, request.match_info["user"]):
        raise NotFound("Not a member.", reason="member")
    return web.Response(status=204)


# -- tokens ----------------------------------------------------------------------------------------


async def list_tokens(request: web.Request) -> web.Response:
    caller = await _caller(request)
    ws = await _workspace(caller, request.match_info["ws"])
    tokens = await caller.services.list_tokens(ws.id)
    return json_response({"tokens": [token_view(t) for t in tokens]})


async def create_token(request: web.Request) -> web.Response:
    caller = await _caller(request)
    ws = await _workspace(caller, request.match_info["ws"])
    body = await read_json_object(request)
    _only(body, {"name", "scopes", "type", "user", "expires_in", "expires_at", "allowed_domains"})
    record, plaintext = await caller.services.create_token(
        workspace=ws.id,
        name=_str(body, "name", True) or "",
        scopes=_str_list(body, "scopes"),
        type=_str(body, "type"),
        user=_str(body, "user"),
        expires_at=parse_expiry(_str(body, "expires_in"), _str(body, "expires_at"), time.time()),
        allowed_domains=_str_list(body, "allowed_domains"),
        actor=caller.actor,
    )
    return json_response({**token_view(record), "token": plaintext}, status=201)


async def _token(caller: Caller, token_id: str) -> Any:
    try:
        t = await caller.services.token(token_id)
    except NotFound:
        t = None
    if t is None:
        raise NotFound("No such token.", reason="token")
    await _workspace(caller, t.workspace_id)  # 404 unless the caller administers its workspace
    return t


async def get_token(request: web.Request) -> web.Response:
    caller = await _caller(request)
    return json_response(token_view(await _token(caller, request.match_info["id"])))


async def revoke_token(request: web.Request) -> web.Response:
    caller = await _caller(request)
    t = await _token(caller, request.match_info["id"])
    return json_response(token_view(await caller.services.revoke_token(t.id, caller.actor)))


async def rotate_token(request: web.Request) -> web.Response:
    caller = await _caller(request)
    t = await _token(caller, request.match_info["id"])
    body = await read_json_object(request) if request.can_read_body else {}
    _only(body, {"grace"})
    grace = parse_duration(_str(body, "grace") or "1h")
    record, plaintext = await caller.services.rotate_token(t.id, grace, caller.actor)
    return json_response({**token_view(record), "token": plaintext})


async def audit(request: web.Request) -> web.Response:
    caller = await _caller(request)
    ws = await _workspace(caller, request.match_info["ws"])
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), 1000)
    except ValueError:
        raise InvalidArgument("limit must be an integer.", reason="limit") from None
    events = await caller.services.store.list_audit(workspace_id=ws.id, limit=limit)
    return json_response(
        {
            "events": [
                {
                    "at": iso(e.at),
                    "action": e.action,
                    "actor": e.actor,
                    "address": e.address,
                    "token_id": e.token_id,
                    "token_prefix": e.visible_prefix,
                    "workspace_id": e.workspace_id,
                    "detail": e.detail,
                }
                for e in events
            ]
        }
    )


def install_admin(app: web.Application, gw: Gateway) -> None:
    r = app.router
    r.add_get("/admin/workspaces", list_workspaces)
    r.add_post("/admin/workspaces", create_workspace)
    r.add_get("/admin/workspaces/{ws}", get_workspace)
    r.add_patch("/admin/workspaces/{ws}", patch_workspace)
    r.add_delete("/admin/workspaces/{ws}", delete_workspace)
    r.add_post("/admin/users", create_user)
    r.add_get("/admin/workspaces/{ws}/members", list_members)
    r.add_put("/admin/workspaces/{ws}/members/{user}", put_member)
    r.add_delete("/admin/workspaces/{ws}/members/{user}", delete_member)
    r.add_get("/admin/workspaces/{ws}/tokens", list_tokens)
    r.add_post("/admin/workspaces/{ws}/tokens", create_token)
    r.add_get("/admin/tokens/{id}", get_token)
    r.add_post("/admin/tokens/{id}/revoke", revoke_token)
    r.add_post("/admin/tokens/{id}/rotate", rotate_token)
    r.add_get("/admin/workspaces/{ws}/audit", audit)

"""The admin API: workspaces, users, memberships, tokens and the audit log, on the admin listener.

Every call carries a token (``Authorization: Bearer …`` or the configured credential header),
authenticated by the same :class:`~gateway.pipeline.authn.Authenticator` as the proxy and bound to
its workspace by the same workspace step. A token administers its **own** workspace when its
scopes there include ``workspace:admin``, ``tokens:read``/``tokens:write`` (token and OAuth
endpoints only) or the superuser scope; a superuser token of the config's ``operator_workspace``
administers every workspace and may create workspaces. Whatever it creates or touches is bounded
by its own scopes (:mod:`gateway.authz`): no token it mints, rotates or revokes, and no role it
assigns, holds a scope it lacks. Anything else is 403; a workspace or token the caller may not
administer is 404, so ids cannot be probed. All work is done by
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
from gateway.authz import TOKENS_READ, TOKENS_WRITE, authorize, bound, permits
from gateway.errors import InvalidArgument, NotFound, PermissionDenied
from gateway.identity import Identity
from gateway.responses import json_response
from gateway.selfservice import read_json_object
from gateway.services import (
    Actor,
    Services,
    audit_view,
    iso,
    parse_duration,
    parse_expiry,
    token_view,
)
from gateway.store.base import TokenRecord, Workspace

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = [
    "ADMIN_SCOPE",
    "Caller",
    "caller_of",
    "install_admin",
    "only",
    "str_field",
    "str_list",
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


def str_field(body: dict[str, Any], key: str, required: bool = False) -> str | None:
    if key not in body:
        if required:
            raise InvalidArgument(f"{key} is required.", reason=key)
        return None
    value = body[key]
    if not isinstance(value, str):  # null included: the schema says string
        raise InvalidArgument(f"{key} must be a string.", reason=key)
    return value


def str_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{key} must be a list of strings.", reason=key)
    return value


def only(body: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidArgument(f"Unknown field: {extra[0]}.", reason="unknown_field")


# -- workspaces ------------------------------------------------------------------------------------


async def list_workspaces(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    _operator(caller)
    items = await caller.services.store.list_workspaces()
    return json_response({"workspaces": [_ws_view(w) for w in items if w.deleted_at is None]})


async def create_workspace(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    _operator(caller)
    body = await read_json_object(request)
    only(body, {"name", "slug", "id", "plan"})
    ws = await caller.services.create_workspace(
        str_field(body, "name", True) or "",
        str_field(body, "slug"),
        str_field(body, "id"),
        str_field(body, "plan") or "free",
    )
    return json_response(_ws_view(ws), status=201)


async def get_workspace(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    return json_response(_ws_view(await workspace_of(caller, request.match_info["ws"])))


async def patch_workspace(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    _operator(caller)
    ws = await workspace_of(caller, request.match_info["ws"])
    body = await read_json_object(request)
    only(body, {"plan"})
    ws = await caller.services.set_plan(ws.id, str_field(body, "plan", True) or "")
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
    body = await read_json_object(request)
    only(body, {"email", "name"})
    user = await caller.services.create_user(
        str_field(body, "email", True) or "", str_field(body, "name")
    )
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
    body = await read_json_object(request)
    only(body, {"role"})
    role = str_field(body, "role", True) or ""
    rules = caller.services.config.scopes
    if role in caller.services.config.roles:
        # Nobody hands out a role holding more than they do.
        bound(rules, caller.identity, caller.services.config.roles[role])
    m = await caller.services.add_member(ws.id, request.match_info["user"], role)
    return json_response({"user_id": m.user_id, "workspace_id": m.workspace_id, "role": m.role})


async def delete_member(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    ws = await workspace_of(caller, request.match_info["ws"])
    if not await caller.services.remove_member(ws.id, request.match_info["user"], caller.actor):
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
    body = await read_json_object(request)
    only(body, {"name", "scopes", "type", "user", "expires_in", "expires_at", "allowed_domains"})
    record, plaintext = await caller.services.create_token(
        workspace=ws.id,
        name=str_field(body, "name", True) or "",
        scopes=str_list(body, "scopes") if "scopes" in body else None,
        type=str_field(body, "type"),
        user=str_field(body, "user"),
        expires_at=parse_expiry(
            str_field(body, "expires_in"), str_field(body, "expires_at"), time.time()
        ),
        allowed_domains=str_list(body, "allowed_domains"),
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
    body = await read_json_object(request) if request.can_read_body else {}
    only(body, {"grace"})
    grace = parse_duration(str_field(body, "grace") or "1h")
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

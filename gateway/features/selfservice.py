"""Self-service token endpoints a user calls on the proxy listener (Spedy's ``/api/v1/me/tokens``).

Routes name the built-in handler ``me_tokens``::

    - {name: me-tokens, path: /api/v1/me/tokens, methods: [GET], handler: me_tokens, scopes: [tokens:read]}
    - {name: me-tokens-create, path: /api/v1/me/tokens, methods: [POST], handler: me_tokens, scopes: [tokens:write]}
    - {name: me-token, path: "/api/v1/me/tokens/{tokenId}", methods: [GET], handler: me_tokens, scopes: [tokens:read]}
    - {name: me-token-delete, path: "/api/v1/me/tokens/{tokenId}", methods: [DELETE], handler: me_tokens, scopes: [tokens:write]}

The caller must be a *user* (a PAT, OAuth or session credential of theirs); workspace API keys
have no user and get 403. A user only ever sees their own tokens in the current workspace: any
other id is 404, exactly like an id that does not exist, so ids cannot be probed. Whatever the
route says, the caller needs ``tokens:read`` / ``tokens:write``, a new token never holds more than
the caller, and a token whose power the caller's does not cover cannot be read or deleted
(:mod:`gateway.pipeline.authz`). All token logic is :class:`gateway.management.services.Services`; this module only
speaks HTTP and Spedy's JSON shape.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.core.context import RequestContext
from gateway.core.errors import InvalidArgument, NotFound, PermissionDenied
from gateway.core.identity import Identity
from gateway.core.timestamps import iso, parse_expiry
from gateway.edge.responses import json_response
from gateway.edge.wrap import GATEWAY
from gateway.management.audit import Actor
from gateway.management.bodies import MeTokenCreate, read_body
from gateway.management.services import Services
from gateway.pipeline.authz import TOKENS_READ
from gateway.pipeline.builtin import BuiltinHandler
from gateway.store.base import TokenRecord

__all__ = ["HANDLERS", "me_tokens"]


def _view(t: TokenRecord) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "prefix": t.visible_prefix,
        "scopes": sorted(t.scopes),
        "lastUsedAt": iso(t.last_used_at),
        "createdAt": iso(t.created_at),
        "expiresAt": iso(t.expires_at),
    }


def _user(identity: Identity | None) -> tuple[Identity, str]:
    if identity is None or identity.user_id is None:
        raise PermissionDenied(
            "Token management needs a user credential (a personal access token or a session).",
            reason="no_user",
        )
    return identity, identity.user_id


def _pat_type(services: Services, identity: Identity) -> str:
    """New tokens have the caller's type when it is a user token type, else the first PAT type."""
    tt = identity.principal.token_type
    if tt is not None and tt.inherit_user_permissions:
        return tt.name
    for candidate in services.config.token_types:
        if candidate.inherit_user_permissions:
            return candidate.name
    raise InvalidArgument("This gateway defines no personal token type.", reason="no_pat_type")


async def _owned(services: Services, token_id: str, user_id: str, workspace_id: str) -> TokenRecord:
    try:
        t = await services.token(token_id)
    except NotFound:
        t = None
    # Another user's token, another workspace's, or a revoked one: indistinguishable from absent.
    if (
        t is None
        or t.user_id != user_id
        or t.workspace_id != workspace_id
        or t.revoked_at
        or t.kind == "oauth_access"
    ):
        raise NotFound("No such token.", reason="token")
    return t


async def me_tokens(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    services = Services.of_runtime(gw.store, gw.runtime)
    identity, user_id = _user(ctx.identity)
    ws = identity.workspace
    token_id = ctx.params.get("tokenId")

    if token_id is None and request.method in ("GET", "HEAD"):
        # Flush this worker's pending last-used times so the caller sees the latest.
        await gw.usage.flush()
        now = time.time()
        tokens = [
            _view(t)
            for t in await services.list_tokens(ws.id, user_id, caller=identity)
            # OAuth access tokens belong to the app's grant (see /api/oauth/grants), not here.
            if t.state(now) == "active" and t.kind != "oauth_access"
        ]
        return json_response({"tokens": tokens})

    if token_id is None and request.method == "POST":
        body = await read_body(request, MeTokenCreate)
        if not body.name.strip():
            raise InvalidArgument("name is required.", reason="name")
        record, plaintext = await services.create_token(
            workspace=ws.id,
            name=body.name,
            scopes=body.scopes,
            type=_pat_type(services, identity),
            user=user_id,
            expires_at=parse_expiry(body.expiresIn, body.expiresAt, time.time()),
            actor=Actor(id=user_id, address=request.remote),
            caller=identity,
        )
        return json_response({**_view(record), "token": plaintext}, status=201)

    assert token_id is not None
    record = await _owned(services, token_id, user_id, ws.id)
    if request.method in ("GET", "HEAD"):
        await services.may_manage(identity, record, TOKENS_READ)
        return json_response(_view(await services.shown(record)))
    # DELETE: permanent revocation.
    await services.revoke_token(
        record.id, Actor(id=user_id, address=request.remote), caller=identity
    )
    return web.Response(status=204)


# Built-in handlers by the name routes give in `handler:` (gathered by gateway.pipeline.hooks.handlers_of).
HANDLERS: dict[str, BuiltinHandler] = {
    "me_tokens": me_tokens,
}

"""The authorization server's endpoints on the proxy listener (built-in handlers of the routes
:func:`gateway.features.oauth.routes.oauth_routes` adds for the ``oauth:`` section), exported in one
``HANDLERS`` table.

* consent: the page in :mod:`gateway.features.oauth.consentpage`.
* token, revoke, introspect: JSON or form bodies (:class:`gateway.management.bodies.OAuthTokenRequest`,
  :class:`~gateway.management.bodies.OAuthTokenParams`, read by :mod:`gateway.features.oauth.wire`),
  client authentication; their errors are :class:`~gateway.core.errors.OAuthError`, rendered by
  :mod:`gateway.edge.responses` in RFC 6749 §5.2's envelope; answers carry ``Cache-Control: no-store``.
* metadata (RFC 8414) and a signed-in user's own grants (list, revoke).
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import ValidationError

from gateway.core.context import RequestContext
from gateway.core.errors import NotFound, OAuthError, PermissionDenied
from gateway.edge.responses import json_response
from gateway.edge.wrap import GATEWAY
from gateway.features.oauth.apps import grant_view
from gateway.features.oauth.consentpage import consent_endpoint
from gateway.features.oauth.service import OAuthService
from gateway.features.oauth.store import ClientRecord
from gateway.features.oauth.wire import NO_STORE, basic_credentials, body_params, service_of
from gateway.management.bodies import Body, OAuthTokenParams, OAuthTokenRequest, invalid, parse
from gateway.pipeline.authz import (
    TOKENS_READ,
    TOKENS_WRITE,
    Powers,
    authorize,
    covers,
    require_covers,
)
from gateway.pipeline.builtin import BuiltinHandler

__all__ = ["HANDLERS"]

P = TypeVar("P", bound=Body)


def _invalid_request(model: type[Body], exc: ValidationError) -> OAuthError:
    return OAuthError("invalid_request", invalid(model, exc).message)


async def _client_call(
    request: web.Request, model: type[P]
) -> tuple[OAuthService, ClientRecord, P, dict[str, str]]:
    """The authenticated client and its parameters; the client is checked first (RFC 6749 §5.2:
    a bad client is invalid_client whatever else is wrong)."""
    gw = request.app[GATEWAY]
    svc = service_of(gw)
    params = await body_params(request)
    client = await svc.authenticate_client(params, basic_credentials(request))
    return svc, client, parse(model, params, _invalid_request), params


# -- token, revocation, introspection, metadata ------------------------------------------------------


async def token_endpoint(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    svc, client, _, params = await _client_call(request, OAuthTokenRequest)
    return json_response(await svc.token(client, params), headers=NO_STORE)


async def revoke_endpoint(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    svc, client, body, _ = await _client_call(request, OAuthTokenParams)
    await svc.revoke(client, body.token)
    return web.Response(status=200, headers=NO_STORE)


async def introspect_endpoint(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    svc, client, body, _ = await _client_call(request, OAuthTokenParams)
    return json_response(await svc.introspect(client, body.token), headers=NO_STORE)


async def metadata_endpoint(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    svc = service_of(gw)
    issuer = svc.cfg.issuer or f"{request.scheme}://{request.host}"
    return json_response(svc.metadata(issuer))


# -- a user's grants -----------------------------------------------------------------------------------


async def grants_endpoint(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    svc = service_of(gw)
    ident = ctx.identity
    if ident is None or ident.user_id is None:
        raise PermissionDenied("Listing app grants needs a user credential.", reason="no_user")
    # Grants are credentials too: the same decision as every token door (gateway.pipeline.authz).
    rules = gw.runtime.config.scopes
    powers = Powers(gw.runtime.config, gw.runtime.workspaces)
    grant_id = ctx.params.get("grantId")
    if grant_id is None:
        authorize(rules, ident, all_of=[TOKENS_READ])
        grants = [
            g
            for g in await svc.active_grants(user_id=ident.user_id, workspace_id=ident.workspace.id)
            if covers(rules, ident, await powers.of_grant(g.scopes, g.user_id, ident.workspace))
        ]
        clients = {g.client_id: await svc.oauth.get_client(g.client_id) for g in grants}
        return json_response({"grants": [grant_view(g, clients[g.client_id]) for g in grants]})
    grant = await svc.oauth.get_grant(grant_id)
    if (
        grant is None
        or grant.revoked_at is not None
        or grant.user_id != ident.user_id
        or grant.workspace_id != ident.workspace.id
    ):
        raise NotFound("No such grant.", reason="grant")
    authorize(rules, ident, all_of=[TOKENS_WRITE])
    power = await powers.of_grant(grant.scopes, grant.user_id, ident.workspace)
    require_covers(rules, ident, power, "grant")
    await svc.revoke_grant(grant.id, "revoked_by_user", ident.user_id)
    return web.Response(status=204)


# Built-in handlers by the name routes give in `handler:` (gathered by gateway.pipeline.hooks.handlers_of).
HANDLERS: dict[str, BuiltinHandler] = {
    "oauth_token": token_endpoint,
    "oauth_revoke": revoke_endpoint,
    "oauth_introspect": introspect_endpoint,
    "oauth_metadata": metadata_endpoint,
    "oauth_grants": grants_endpoint,
    "oauth_consent": consent_endpoint,
}

"""Velt's ``POST /v2/workspace/apikey/create``, served by the gateway (003_0f78798a232af917.txt).

Authenticated by the workspace-level pair ``x-velt-workspace-id`` + ``x-velt-auth-token`` (a token of
kind ``workspace_key``), it takes ``{"data": {...}}`` and answers Velt's envelopes:
``{"result": {"status": "success", "message": "API key created successfully.", "data": {"apiKey":
…}}}`` (plus ``authToken`` when ``createAuthToken`` is true), or ``{"error": {"status":
"INVALID_ARGUMENT", "message": "ownerEmail is required."}}`` naming the first bad field.

The API key is a token of the config's ``velt_api_key`` type, limited to ``allowedDomains`` (plus
``localhost`` when ``addLocalHostToAllowedDomains``), owned by the ``ownerEmail`` user (created on
first use). It is a public browser key: it holds no scope, its type may only be used on the
browser-SDK routes (``token_types[].routes``), and one created with no allowed domain works from
no origin at all (the documented request without ``allowedDomains`` still succeeds). The caller needs ``tokens:write``; an ``authToken`` made
with ``createAuthToken`` holds exactly the caller's scopes, never more (:mod:`gateway.pipeline.authz`). The
plan and service settings are validated and recorded in the audit log; the gateway has nothing to
enforce with them.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.core.context import RequestContext
from gateway.core.errors import InvalidArgument, NotFound, PermissionDenied
from gateway.edge.responses import json_response
from gateway.edge.wrap import GATEWAY
from gateway.management.audit import Actor
from gateway.management.bodies import VeltKeyData, VeltKeyRequest, parse, read_json_object
from gateway.management.services import Services
from gateway.pipeline.builtin import BuiltinHandler

__all__ = ["API_KEY_TYPE", "AUTH_TOKEN_TYPE", "HANDLERS", "apikey_create"]

API_KEY_TYPE = "velt_api_key"
AUTH_TOKEN_TYPE = "velt_auth_token"


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason="velt_argument")


def validate(body: dict[str, Any]) -> VeltKeyData:
    """The ``data`` object (:class:`gateway.management.bodies.VeltKeyRequest`); raises naming the first
    problem, then checks what the model cannot: plan keys beyond ``type`` only with
    ``customPlanInfo``, and each allowed domain by the services' rule."""
    data = parse(VeltKeyRequest, body).data
    extra = data.planInfo.model_extra if data.planInfo is not None else None
    if extra and not data.customPlanInfo:
        raise _bad(f"Unknown field: data.planInfo.{next(iter(extra))}.")
    for domain in data.allowedDomains:
        try:
            Services.check_domains([domain])
        except InvalidArgument:
            raise _bad(f"allowedDomains contains an invalid domain: {domain!r}.") from None
    return data


async def apikey_create(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    identity = ctx.identity
    token = identity.principal.token if identity else None
    if identity is None or token is None or token.kind != "workspace_key":
        raise PermissionDenied(
            "Creating API keys needs the workspace auth token.", reason="not_ws_key"
        )
    data = validate(await read_json_object(request))
    services = Services.of_runtime(gw.store, gw.runtime)
    email = data.ownerEmail.strip().lower()
    try:
        owner = await services.user(email)
    except NotFound:
        owner = await services.create_user(email)
    domains = list(dict.fromkeys(d.strip().lower() for d in data.allowedDomains))
    if data.addLocalHostToAllowedDomains and "localhost" not in domains:
        domains.append("localhost")
    actor = Actor(id=token.id, address=request.remote)
    name = data.apiKeyName or f"API key for {email}"
    record, api_key = await services.create_token(
        workspace=identity.workspace.id,
        name=name,
        type=API_KEY_TYPE,
        user=owner.id,
        scopes=[],  # a public browser key holds no scope
        allowed_domains=domains,
        actor=actor,
        caller=identity,
    )
    # As sent, minus secrets of the caller's: the webhook config and the email service's key.
    settings = data.model_dump(
        exclude_unset=True,
        exclude={
            "ownerEmail": True,
            "apiKeyName": True,
            "webhookServiceConfig": True,
            "emailServiceConfig": {"apiKey"},
        },
    )
    await gw.store.add_audit(
        "velt.apikey.settings",
        at=record.created_at,
        actor=actor.id,
        address=actor.address,
        token_id=record.id,
        visible_prefix=record.visible_prefix,
        workspace_id=record.workspace_id,
        detail=json.dumps({"ownerEmail": email, **settings}, sort_keys=True),
    )
    result: dict[str, Any] = {"apiKey": api_key}
    if data.createAuthToken:
        _, auth_token = await services.create_token(
            workspace=identity.workspace.id,
            name=f"Auth token for {name}",
            type=AUTH_TOKEN_TYPE,
            actor=actor,
            caller=identity,
        )
        result["authToken"] = auth_token
    return json_response(
        {
            "result": {
                "status": "success",
                "message": "API key created successfully.",
                "data": result,
            }
        }
    )


# Built-in handlers by the name routes give in `handler:` (gathered by gateway.pipeline.hooks.handlers_of).
HANDLERS: dict[str, BuiltinHandler] = {
    "velt_apikey_create": apikey_create,
}

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
with ``createAuthToken`` holds exactly the caller's scopes, never more (:mod:`gateway.authz`). The
plan and service settings are validated and recorded in the audit log; the gateway has nothing to
enforce with them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from gateway.app import GATEWAY
from gateway.builtin import register
from gateway.context import RequestContext
from gateway.errors import InvalidArgument, NotFound, PermissionDenied
from gateway.responses import json_response
from gateway.selfservice import read_json_object
from gateway.services import Actor, Services

__all__ = ["API_KEY_TYPE", "AUTH_TOKEN_TYPE", "apikey_create"]

API_KEY_TYPE = "velt_api_key"
AUTH_TOKEN_TYPE = "velt_auth_token"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STR, _BOOL, _OBJ, _LIST = "a string", "a boolean", "an object", "an array of strings"
FIELDS: dict[str, str] = {
    "ownerEmail": _STR,
    "type": _STR,
    "createAuthToken": _BOOL,
    "apiKeyName": _STR,
    "planInfo": _OBJ,
    "customPlanInfo": _BOOL,
    "customPlanInfoData": _OBJ,
    "allowedDomains": _LIST,
    "addLocalHostToAllowedDomains": _BOOL,
    "useEmailService": _BOOL,
    "useWebhookService": _BOOL,
    "emailServiceConfig": _OBJ,
    "webhookServiceConfig": _OBJ,
}
NESTED_STRINGS: dict[str, set[str]] = {
    "planInfo": {"type"},
    "emailServiceConfig": {
        "type",
        "apiKey",
        "fromEmail",
        "fromCompany",
        "commentTemplateId",
        "tagTemplateId",
    },
    "webhookServiceConfig": {"authToken", "rawNotificationUrl", "processedNotificationUrl"},
}


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason="velt_argument")


def _is(value: Any, kind: str) -> bool:
    if kind == _STR:
        return isinstance(value, str)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _OBJ:
        return isinstance(value, dict)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def validate(body: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` object, checked field by field; raises naming the first problem."""
    if set(body) != {"data"}:
        extra = sorted(set(body) - {"data"})
        if extra:
            raise _bad(f"Unknown field: {extra[0]}.")
        raise _bad("data is required.")
    data = body["data"]
    if not isinstance(data, dict):
        raise _bad("data must be an object.")
    for key in data:
        if key not in FIELDS:
            raise _bad(f"Unknown field: data.{key}.")
    owner = data.get("ownerEmail")
    if owner is None or (isinstance(owner, str) and not owner.strip()):
        raise _bad("ownerEmail is required.")
    for key, kind in FIELDS.items():
        if key in data and not _is(data[key], kind):
            raise _bad(f"{key} must be {kind}.")
    if not _EMAIL.match(owner):
        raise _bad("ownerEmail must be a valid email address.")
    for key, allowed in NESTED_STRINGS.items():
        for sub, value in data.get(key, {}).items():
            if sub not in allowed and not (key == "planInfo" and data.get("customPlanInfo")):
                raise _bad(f"Unknown field: data.{key}.{sub}.")
            if sub in allowed and not isinstance(value, str):
                raise _bad(f"{key}.{sub} must be a string.")
    if data.get("apiKeyName") is not None and not data["apiKeyName"].strip():
        raise _bad("apiKeyName must not be empty.")
    for domain in data.get("allowedDomains", []):
        try:
            Services.check_domains([domain])
        except InvalidArgument:
            raise _bad(f"allowedDomains contains an invalid domain: {domain!r}.") from None
    return data


@register("velt_apikey_create")
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
    email = data["ownerEmail"].strip().lower()
    try:
        owner = await services.user(email)
    except NotFound:
        owner = await services.create_user(email)
    domains = list(dict.fromkeys(d.strip().lower() for d in data.get("allowedDomains", [])))
    if data.get("addLocalHostToAllowedDomains") and "localhost" not in domains:
        domains.append("localhost")
    actor = Actor(id=token.id, address=request.remote)
    name = data.get("apiKeyName") or f"API key for {email}"
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
    settings = {k: data[k] for k in FIELDS if k in data and k not in ("ownerEmail", "apiKeyName")}
    settings.pop("webhookServiceConfig", None)  # holds a secret of the caller's; not recorded
    if "emailServiceConfig" in settings:
        settings["emailServiceConfig"] = {
            k: v for k, v in settings["emailServiceConfig"].items() if k != "apiKey"
        }
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
    if data.get("createAuthToken"):
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

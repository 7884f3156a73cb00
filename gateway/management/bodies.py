"""The request bodies of the gateway's documented endpoints (admin API, self-service, Velt's key
endpoint, OAuth's token endpoints), as one pydantic model each, and reading a body into one.

A model is the single statement of a body's shape: the handler gets a typed value from
:func:`read_body`, and :mod:`gateway.management.openapi` publishes the model's JSON Schema, so the document and
the handler cannot disagree. Models are strict (``5`` is no string, ``"yes"`` no boolean), refuse
unknown fields and refuse ``null`` for every field (absent means "not given"; the schema says so by
never allowing null). A problem becomes ``400 INVALID_ARGUMENT`` naming the field, the first of
unknown field, missing field, wrong type, bad value in that order::

    Unknown field: data.surprise.     name is required.     scopes must be a list of strings.

Rules a model cannot state (a duration's grammar, a scope being known, an expiry in the future)
stay with the services that apply them; a model may document them (``_doc``) for the schema.
:class:`Route` pairs an admin-listener route with its body model, for ``install_admin`` and the
document alike; :func:`json_schemas` renders the models as the document shows them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, ClassVar, NamedTuple, TypeVar

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import ErrorDetails, PydanticCustomError, core_schema

from gateway.core.errors import GatewayError, InvalidArgument

__all__ = [
    "MAX_BODY",
    "Body",
    "CreateOAuthApp",
    "CreateToken",
    "CreateUser",
    "CreateWorkspace",
    "MeTokenCreate",
    "OAuthTokenParams",
    "OAuthTokenRequest",
    "PatchWorkspace",
    "PutMember",
    "RotateToken",
    "Route",
    "VeltKeyRequest",
    "add_routes",
    "invalid",
    "json_schemas",
    "read_body",
    "read_json_object",
]

MAX_BODY = 64 * 1024
M = TypeVar("M", bound="Body")

_NULL = object()  # what an explicit null becomes: no field type accepts it (see Body._no_null)
_TYPE_PHRASE = {
    "string_type": "a string",
    "bool_type": "a boolean",
    "list_type": "a list of strings",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _rank(err: ErrorDetails) -> int:
    kind = err["type"]
    if kind == "extra_forbidden":
        return 0
    if kind == "missing":
        return 1
    return 2 if kind in _TYPE_PHRASE else 3


class Body(BaseModel):
    """A JSON request body: strict, closed, null-free; errors phrased by :func:`invalid`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # The whole message for any problem with a field (Spedy says "name is required." for all).
    messages: ClassVar[dict[str, str]] = {}
    # How a type is named in messages when the default (_TYPE_PHRASE) is not this API's wording.
    phrases: ClassVar[dict[str, str]] = {}
    # A top-level key wrapping the fields (Velt's "data"), left out of the field names in messages.
    envelope: ClassVar[str | None] = None
    reason: ClassVar[str | None] = None  # the InvalidArgument reason; default: the field's name
    form: ClassVar[bool] = False  # also taken as application/x-www-form-urlencoded

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        # Defaults are never validated, so this sees only a null the client sent.
        return _NULL if value is None else value


def invalid(model: type[Body], exc: ValidationError) -> InvalidArgument:
    """The first problem of ``exc``, in the order the module docstring gives, as a 400."""
    err = sorted(exc.errors(), key=_rank)[0]
    kind = err["type"]
    if any(isinstance(p, int) for p in err["loc"]):
        kind = "list_type"  # a bad item: name the list and what it holds
    loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
    path = ".".join(loc)
    if model.envelope and len(loc) > 1 and loc[0] == model.envelope:
        loc = loc[1:]
    name = ".".join(loc)
    if kind == "extra_forbidden":
        message = f"Unknown field: {path}."
    elif name in model.messages:
        message = model.messages[name]
    elif kind == "missing":
        message = f"{name} is required."
    elif kind in _TYPE_PHRASE:
        message = f"{name} must be {model.phrases.get(kind, _TYPE_PHRASE[kind])}."
    else:
        message = f"{name} {err['msg']}."
    reason = model.reason or ("unknown_field" if kind == "extra_forbidden" else loc[0] or "body")
    return InvalidArgument(message, reason=reason)


async def read_json_object(request: web.Request, max_bytes: int = MAX_BODY) -> dict[str, Any]:
    """The request body as a JSON object, or 400 INVALID_ARGUMENT saying what is wrong."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise InvalidArgument("The request body is too large.", reason="body_too_large")
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise InvalidArgument("The request body is too large.", reason="body_too_large")
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("The request body must be JSON.", reason="bad_json") from None
    if not isinstance(data, dict):
        raise InvalidArgument("The request body must be a JSON object.", reason="bad_json")
    return data


def parse(
    model: type[M],
    data: dict[str, Any],
    error: Callable[[type[Body], ValidationError], GatewayError] = invalid,
) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(model, exc) from None


async def read_body(request: web.Request, model: type[M]) -> M:
    """The JSON body validated into ``model``; 400 INVALID_ARGUMENT naming the first problem."""
    return parse(model, await read_json_object(request))


class Route(NamedTuple):
    """One admin-listener route: what install_admin registers and gateway.management.openapi documents."""

    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    body: type[Body] | None = None


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    for route in routes:
        if route.method == "GET":
            app.router.add_get(route.path, route.handler)  # and HEAD, as aiohttp does for GET
        else:
            app.router.add_route(route.method, route.path, route.handler)


class _NoNull(GenerateJsonSchema):
    """Bodies never take null (Body._no_null): an optional field's schema is just its type."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def json_schemas(models: Iterable[type[Body]], ref_template: str) -> dict[str, Any]:
    """The JSON Schema of each model and of the models they nest, by class name."""
    _, top = models_json_schema(
        [(m, "validation") for m in models], ref_template=ref_template, schema_generator=_NoNull
    )
    defs: dict[str, Any] = top.get("$defs", {})
    for schema in defs.values():
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            if prop.get("default", 0) is None:
                del prop["default"]  # None stands for "absent", not a value a client may send
    return defs


# -- field types -------------------------------------------------------------------------------------


def _doc(**schema: Any) -> Any:
    """JSON Schema a service enforces (with its own message), stated here for the document."""
    return Field(json_schema_extra=schema)


Strings = list[str]
Text = Annotated[str, _doc(pattern=r"\S")]  # services refuse a blank name: "name is required."
TokenName = Annotated[str, _doc(minLength=1, maxLength=200, pattern=r"\S")]
# services.parse_duration's grammar, with as many digits as an expiry date can hold.
ExpiresIn = Annotated[str, _doc(pattern="^[0-9]{1,5}[smhdw]$")]
Grace = Annotated[str, _doc(pattern="^[0-9]{1,6}[smhdw]$")]


# -- admin API (gateway.management.adminapi, gateway.features.oauth.admin) ---------------------------------------------


class CreateWorkspace(Body):
    name: Text
    slug: Annotated[str, _doc(pattern="^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")] | None = None
    id: str | None = None
    plan: str | None = None


class PatchWorkspace(Body):
    plan: str


class CreateUser(Body):
    email: Annotated[str, _doc(format="email")]
    name: str | None = None


class PutMember(Body):
    role: str


class CreateToken(Body):
    name: TokenName
    scopes: Strings | None = None
    type: str | None = None
    user: str | None = None
    expires_in: ExpiresIn | None = None
    expires_at: str | None = None
    allowed_domains: Strings = []


class RotateToken(Body):
    grace: Grace | None = None


class CreateOAuthApp(Body):
    phrases = {"bool_type": "true or false"}

    name: str
    redirect_uris: Strings = []
    scopes: Strings = []
    public: bool = False


# -- self-service (gateway.features.selfservice); field names are Spedy's JSON names -------------------------


class MeTokenCreate(Body):
    messages = {"name": "name is required."}

    name: TokenName
    scopes: Strings | None = None
    expiresIn: ExpiresIn | None = None
    expiresAt: str | None = None


# -- Velt's key endpoint (gateway.features.velt); field names are Velt's JSON names --------------------------

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise PydanticCustomError("email", "must be a valid email address")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("missing", "is required")  # blank is as good as absent
    return value


def _not_empty(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("empty", "must not be empty")
    return value


class VeltPlanInfo(Body):
    # Any further key is allowed with customPlanInfo (checked by VeltKeyData.extras).
    model_config = ConfigDict(extra="allow")
    type: str | None = None


class VeltEmailService(Body):
    type: str | None = None
    apiKey: str | None = None
    fromEmail: str | None = None
    fromCompany: str | None = None
    commentTemplateId: str | None = None
    tagTemplateId: str | None = None


class VeltWebhookService(Body):
    authToken: str | None = None
    rawNotificationUrl: str | None = None
    processedNotificationUrl: str | None = None


class VeltKeyData(Body):
    ownerEmail: Annotated[
        str,
        AfterValidator(_not_blank),
        AfterValidator(_email),
        _doc(format="email"),
    ]
    type: str | None = None
    createAuthToken: bool = False
    apiKeyName: Annotated[str, AfterValidator(_not_empty)] | None = None
    planInfo: VeltPlanInfo | None = None
    customPlanInfo: bool = False
    customPlanInfoData: dict[str, Any] | None = None
    allowedDomains: Strings = []
    addLocalHostToAllowedDomains: bool = False
    useEmailService: bool = False
    useWebhookService: bool = False
    emailServiceConfig: VeltEmailService | None = None
    webhookServiceConfig: VeltWebhookService | None = None

    @field_validator("ownerEmail", mode="before")
    @classmethod
    def _owner_given(cls, value: Any) -> Any:
        if value is None or value is _NULL:
            raise PydanticCustomError("missing", "is required")
        return value


class VeltKeyRequest(Body):
    """Velt's request: the new key's settings inside ``data``."""

    envelope = "data"  # messages name the fields inside it without "data."
    reason = "velt_argument"
    phrases = {"list_type": "an array of strings"}

    data: VeltKeyData


# -- OAuth endpoints (gateway.features.oauth.http); JSON or form, unknown parameters ignored (RFC 6749 §3.2) ---


class _OAuthParams(Body):
    model_config = ConfigDict(extra="allow")
    form = True  # RFC 6749 §4.1.3; JSON too
    __pydantic_extra__: dict[str, str] = Field(init=False)

    client_id: str | None = None
    client_secret: str | None = None


class OAuthTokenRequest(_OAuthParams):
    # Any other value is unsupported_grant_type (RFC 6749 §5.2), not a malformed request.
    grant_type: Annotated[str, _doc(enum=["authorization_code", "refresh_token"])]
    code: str | None = None
    redirect_uri: str | None = None
    code_verifier: str | None = None
    refresh_token: str | None = None
    scope: str | None = None


class OAuthTokenParams(_OAuthParams):
    """Revocation (RFC 7009) and introspection (RFC 7662)."""

    messages = {"token": "token is required."}

    token: Annotated[str, Field(min_length=1)]
    token_type_hint: str | None = None

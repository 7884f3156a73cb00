"""Issue 20: request bodies are pydantic models (gateway.management.bodies); a bad body is 400
INVALID_ARGUMENT naming its first problem, in one fixed order, as the hand-written checks did."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.core.errors import InvalidArgument
from gateway.management import bodies


def problem(model: type[bodies.Body], data: dict[str, Any]) -> str:
    with pytest.raises(InvalidArgument) as exc:
        bodies.parse(model, data)
    assert exc.value.code == "INVALID_ARGUMENT" and exc.value.status == 400
    return exc.value.message


def test_the_first_problem_is_an_unknown_field_then_a_missing_one_then_a_wrong_type() -> None:
    everything_wrong = {"name": 7, "scopes": "x", "bogus": 1}
    assert problem(bodies.CreateToken, everything_wrong) == "Unknown field: bogus."
    assert problem(bodies.CreateToken, {"scopes": "x"}) == "name is required."
    assert problem(bodies.CreateToken, {"name": 7, "scopes": "x"}) == "name must be a string."
    # Velt: its own wording, fields inside the "data" envelope named without it.
    velt = {"data": {"ownerEmail": "not-an-email", "createAuthToken": "yes"}}
    assert problem(bodies.VeltKeyRequest, velt) == "createAuthToken must be a boolean."
    nested = {"data": {"ownerEmail": "o@example.com", "emailServiceConfig": {"bogus": "x"}}}
    assert problem(bodies.VeltKeyRequest, nested) == "Unknown field: data.emailServiceConfig.bogus."


def test_null_is_refused_like_any_wrong_type_and_the_schema_never_offers_it() -> None:
    assert problem(bodies.CreateWorkspace, {"name": "N", "plan": None}) == "plan must be a string."
    assert problem(bodies.CreateToken, {"name": "n", "scopes": None}) == (
        "scopes must be a list of strings."
    )
    assert problem(bodies.CreateOAuthApp, {"name": "a", "public": None}) == (
        "public must be true or false."
    )
    # absent is fine and reads as None
    assert bodies.parse(bodies.CreateWorkspace, {"name": "N"}).plan is None
    models: list[type[bodies.Body]] = [
        bodies.CreateWorkspace,
        bodies.CreateToken,
        bodies.MeTokenCreate,
        bodies.VeltKeyRequest,
    ]
    schemas = bodies.json_schemas(models, "#/components/schemas/{model}")
    assert "null" not in json.dumps(schemas) and '"default": null' not in json.dumps(schemas)


def test_a_list_item_of_the_wrong_type_names_the_list_and_strictness_holds() -> None:
    assert problem(bodies.CreateToken, {"name": "n", "scopes": ["a", 1]}) == (
        "scopes must be a list of strings."
    )
    # no coercion: a number is no string, "true" is no boolean
    assert problem(bodies.PutMember, {"role": 1}) == "role must be a string."
    assert problem(bodies.CreateOAuthApp, {"name": "a", "public": "true"}) == (
        "public must be true or false."
    )
    # OAuth parameters: unknown ones are ignored (RFC 6749 §3.2), but must be strings
    params = bodies.parse(bodies.OAuthTokenParams, {"token": "t", "resource": "x"})
    assert params.token == "t" and params.model_extra == {"resource": "x"}
    assert problem(bodies.OAuthTokenParams, {"token": ""}) == "token is required."

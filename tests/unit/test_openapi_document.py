"""Issue 20: the OpenAPI document is generated from the route tables and the body models, so a
route cannot be served undocumented and a body cannot be documented other than it is parsed."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from aiohttp import web

from gateway.features.oauth import admin as oauth_admin
from gateway.management import adminapi as admin_api
from gateway.management import bodies, openapi


def body_validator(doc: dict[str, Any], name: str) -> Any:
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema_rs.validator_for(schema)


def test_every_admin_route_registered_is_documented_with_its_body() -> None:
    app = web.Application()
    admin_api.install_admin(app, None)  # type: ignore[arg-type]
    oauth_admin.install_admin(app, None)  # type: ignore[arg-type]
    served = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    doc = openapi.document()
    documented = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method != "parameters" and path.startswith("/admin/")
    }
    assert served == documented
    for route in (*admin_api.ROUTES, *oauth_admin.ROUTES):
        op = doc["paths"][route.path][route.method.lower()]
        if route.body is None:
            assert "requestBody" not in op, route
            continue
        content = op["requestBody"]["content"]["application/json"]["schema"]
        assert content == {"$ref": f"#/components/schemas/{route.body.__name__}"}
        documented_fields = set(doc["components"]["schemas"][route.body.__name__]["properties"])
        assert documented_fields == set(route.body.model_fields), route


def test_the_drifts_the_issue_named_are_gone() -> None:
    """Workspace creation takes an id and slugs of up to 64 characters, as the handler does."""
    doc = openapi.document()
    create = body_validator(doc, "CreateWorkspace")
    assert create.is_valid({"name": "Acme", "id": "ws_acme", "slug": "a" * 64})
    assert not create.is_valid({"name": "Acme", "slug": "a" * 65})
    parsed = bodies.parse(bodies.CreateWorkspace, {"name": "Acme", "id": "ws_acme"})
    assert parsed.id == "ws_acme"


def test_a_route_without_docs_or_docs_without_a_route_fail_the_document(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = bodies.Route("POST", "/admin/undocumented", admin_api.audit, bodies.PutMember)
    monkeypatch.setattr(admin_api, "ROUTES", (*admin_api.ROUTES, extra))
    with pytest.raises(LookupError, match="/admin/undocumented"):
        openapi.document()
    monkeypatch.undo()
    monkeypatch.setitem(openapi.DOCS, "GET /admin/gone", openapi.Doc("Gone"))
    with pytest.raises(LookupError, match="/admin/gone"):
        openapi.document()

"""Issue 4: /openapi.json documents every endpoint the gateway serves itself, and schemathesis,
fuzzing a real `gateway serve` process with it, finds nothing: no 5xx, no undocumented status,
content type, header or body shape."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from gateway.management.openapi import document
from tests.support.served import cli, free_port

if TYPE_CHECKING:  # schemathesis defines its OpenAPI case type for type checkers only
    from schemathesis.specs.openapi.schemas import OpenApiCase

CONFIG = """
listeners: {proxy: "127.0.0.1:{port}", admin: "127.0.0.1:{aport}"}
store: "sqlite:///{db}"
operator_workspace: ops
token_types:
  - {name: pat, prefix: gw_pat_, kind: pat, inherit_user_permissions: true}
  - {name: oauth, prefix: gw_oat_, kind: oauth_access}
oauth: {}
workspace: {source: token}
scopes: {known: [items:read, workspace:admin, admin:all]}
roles: {owner: [admin:all], member: [items:read]}
upstreams: {api: "http://127.0.0.1:9"}
routes:
  - {name: me-tokens, path: /api/v1/me/tokens, methods: [GET, HEAD, POST], handler: me_tokens}
  - {name: me-token, path: "/api/v1/me/tokens/{tokenId}", methods: [GET, HEAD, DELETE], handler: me_tokens}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("openapi")
    port, aport = free_port(), free_port()
    cfg = tmp / "gateway.yaml"
    cfg.write_text(
        CONFIG.replace("{port}", str(port))
        .replace("{aport}", str(aport))
        .replace("{db}", str(tmp / "g.db"))
    )
    cli(cfg, "workspace", "create", "--name", "Ops", "--slug", "ops")
    cli(cfg, "user", "create", "--email", "root@example.com")
    cli(cfg, "member", "add", "--workspace", "ops", "--user", "root@example.com", "--role", "owner")
    token = cli(
        cfg, "token", "create", "--workspace", "ops", "--name", "fuzz", "--user", "root@example.com"
    )["token"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(cfg), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "GATEWAY_LOG_LEVEL": "WARNING"},
    )
    admin = f"http://127.0.0.1:{aport}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{admin}/healthz", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield {"proxy": f"http://127.0.0.1:{port}", "admin": admin, "token": token}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def test_the_served_document_is_the_documented_one(served: dict[str, str]) -> None:
    with urllib.request.urlopen(f"{served['admin']}/openapi.json", timeout=5) as r:
        served_doc = json.loads(r.read())
    assert served_doc == json.loads(json.dumps(document()))
    assert served_doc["openapi"] == "3.1.0"
    for path in (
        "/api/v1/me/tokens",
        "/api/v1/me/tokens/{tokenId}",
        "/v2/workspace/apikey/create",
        "/admin/workspaces/{ws}/tokens",
        "/admin/tokens/{id}/rotate",
        "/admin/workspaces/{ws}/audit",
        "/admin/oauth-apps",
        "/admin/oauth-apps/{client_id}",
        "/admin/workspaces/{ws}/oauth-grants",
        "/admin/oauth-grants/{grant_id}",
        "/api/oauth/token",
        "/.well-known/oauth-authorization-server",
    ):
        assert path in served_doc["paths"]


def test_workspace_creation_accepts_what_the_document_now_says(served: dict[str, str]) -> None:
    """Issue 20: the document, generated from the body model, offers `id` and 64-character slugs
    on workspace creation, and the handler takes them."""
    doc = document()
    create = doc["components"]["schemas"]["CreateWorkspace"]
    assert {"id", "slug"} <= set(create["properties"])
    body = {"name": "Drift", "id": "ws_drift", "slug": "d" * 64}
    request = urllib.request.Request(
        f"{served['admin']}/admin/workspaces",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {served['token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as r:
        made = json.loads(r.read())
        assert r.status == 201
    assert (made["id"], made["slug"]) == ("ws_drift", "d" * 64)


schema = schemathesis.openapi.from_dict(document()).include(tag_regex="^(proxy|admin)$")

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    # Issue 17 §6: the schema and the handlers agree both ways (what the schema forbids is
    # refused), and a method a path does not serve is 405 with Allow.
    checks.negative_data_rejection,
    checks.unsupported_method,
]


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_schemathesis_finds_nothing(case: OpenApiCase, served: dict[str, str]) -> None:
    tags = case.operation.definition.raw.get("tags", [])
    base = served["proxy"] if "proxy" in tags else served["admin"]
    case.call_and_validate(
        base_url=base, headers={"Authorization": f"Bearer {served['token']}"}, checks=CHECKS
    )

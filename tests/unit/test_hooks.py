"""The request path's hooks as one frozen object, and the one registry of built-in handlers.

``gateway check`` and a running gateway ask the same registry (the ``HANDLERS`` tables the feature
modules export), so a route naming a handler nobody exports is refused by the one and answered
404 ``handler_missing`` by the other.
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import aiohttp
import pytest

from gateway import cli
from gateway.extensions import load_all
from gateway.features import selfservice
from gateway.pipeline.hooks import Hooks, handlers_of
from tests.conftest import GatewayFactory

CONFIG = """
store: "{store}"
token_types: [{name: live, prefix: gw_live_, kind: api_key}]
upstreams: {api: "http://127.0.0.1:9"}
routes:
  - {name: known, path: /me/tokens, handler: me_tokens}
  - {name: ghost, path: /ghost, public: true, handler: no_such_handler}
"""


def test_gateway_check_names_the_route_whose_handler_no_module_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.replace("{store}", f"sqlite:///{tmp_path}/gw.db"))
    assert cli.main(["--config", str(path), "check"]) == 1
    err = capsys.readouterr().err
    assert "routes[1].handler: unknown handler (got 'no_such_handler')" in err
    assert "routes[0]" not in err  # me_tokens is exported by gateway.features.selfservice


async def test_a_running_gateway_reads_its_frozen_hooks_from_the_runtime(
    make_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    running = await make_gateway(CONFIG)
    gw = running.gw
    assert gw.runtime.hooks is gw.hooks
    assert dict(gw.hooks.handlers) == handlers_of(load_all())
    assert gw.hooks.handlers["me_tokens"] is selfservice.me_tokens
    assert gw.hooks.checks and gw.hooks.observers  # ratelimit/origins and access log, telemetry
    with pytest.raises(AttributeError, match="frozen"):
        gw.hooks.checks = ()
    with pytest.raises(TypeError):
        gw.hooks.handlers["x"] = selfservice.me_tokens  # type: ignore[index]
    # A new set of hooks reaches requests through a new runtime, as a reload builds it.
    reasons: list[str | None] = []
    gw.hooks = dataclasses.replace(
        gw.hooks, observers=(*gw.hooks.observers, lambda req, resp, ctx: reasons.append(ctx.reason))
    )
    gw.apply_config(gw.config)
    # A route naming an unknown handler answers 404 at run time, as before.
    async with http.get(f"{running.url}/ghost") as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "NOT_FOUND"
    assert reasons == ["handler_missing"]


def test_a_replaced_hooks_object_is_frozen_too() -> None:
    hooks = Hooks().freeze()
    copy = dataclasses.replace(hooks, checks=())
    with pytest.raises(AttributeError):
        copy.observers = ()


def test_a_handler_name_exported_by_two_modules_is_refused() -> None:
    one = types.ModuleType("one")
    two = types.ModuleType("two")
    one.HANDLERS = two.HANDLERS = {"same": selfservice.me_tokens}  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="'same' is exported twice"):
        handlers_of([one, two])

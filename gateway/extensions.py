"""The one list of feature modules that plug into the gateway.

A feature module may define any of:

* ``install(gw: Gateway) -> None``: add request-path hooks (``gw.hooks``, :class:`gateway.pipeline.hooks.Hooks`:
  pipeline checks, observers, …), a session verifier, closers … to a gateway; the hooks are frozen
  once every module has installed;
* ``install_admin(app: web.Application, gw: Gateway) -> None``: add routes to the admin listener;
* ``install_proxy(app: web.Application, gw: Gateway) -> None``: add pages to the proxy listener,
  matched before the pipeline's catch-all (so they must not overlap configured routes); that app
  has no middleware, so each handler must be wrapped with :func:`gateway.edge.wrap.with_edge`;
* ``HANDLERS: dict[str, BuiltinHandler]``: built-in handlers by the name routes give in ``handler:``
  (gathered by :func:`gateway.pipeline.hooks.handlers_of`; a name exported twice is an error).

The server, the tests and ``gateway check`` all load this same list, so they see the same gateway.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTENSIONS", "load_all"]

EXTENSIONS: list[str] = [
    "gateway.features.telemetry",
    "gateway.features.tracing",
    "gateway.store.propagation",
    "gateway.features.ratelimit",
    "gateway.features.selfservice",
    "gateway.features.origins",
    "gateway.features.velt",
    "gateway.features.leaks",
    "gateway.management.adminapi",
    "gateway.management.openapi",
    "gateway.features.dashboard",
    "gateway.features.sessionjwt",
    "gateway.features.oauth.http",
    "gateway.features.oauth.admin",
    "gateway.features.extauth",
]


def load_all() -> list[ModuleType]:
    return [importlib.import_module(name) for name in EXTENSIONS]

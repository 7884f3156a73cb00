"""Endpoints the gateway serves itself on the proxy listener (routes with ``handler:``).

A built-in handler runs *after* the pipeline's route, authentication, workspace and scope steps for
its route (unless the route is public), so it gets the same deny-by-default treatment as proxied
routes. A feature module exports its handlers by name in a module-level ``HANDLERS`` table;
:func:`gateway.pipeline.hooks.handlers_of` gathers them from the modules :mod:`gateway.extensions` lists into
the gateway's hooks, and ``gateway check`` refuses a route naming a handler no module exports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.core.context import RequestContext

__all__ = ["BuiltinHandler"]

BuiltinHandler = Callable[[web.Request, RequestContext], Awaitable[web.StreamResponse]]

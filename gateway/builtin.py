"""Endpoints the gateway serves itself on the proxy listener (routes with ``handler:``).

A built-in handler runs *after* the pipeline's route, authentication, workspace and scope steps for
its route (unless the route is public), so it gets the same deny-by-default treatment as proxied
routes. Modules register handlers by name with :func:`register`; ``gateway check`` refuses a route
naming a handler nobody registered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.context import RequestContext

__all__ = ["HANDLERS", "BuiltinHandler", "register"]

BuiltinHandler = Callable[[web.Request, RequestContext], Awaitable[web.StreamResponse]]
HANDLERS: dict[str, BuiltinHandler] = {}


def register(name: str) -> Callable[[BuiltinHandler], BuiltinHandler]:
    def deco(fn: BuiltinHandler) -> BuiltinHandler:
        HANDLERS[name] = fn
        return fn

    return deco

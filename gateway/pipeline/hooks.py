"""The request path's extension points, as one typed object: :class:`Hooks`.

Feature modules fill a gateway's :class:`Hooks` in their ``install(gw)`` (see
:mod:`gateway.extensions`); the gateway then freezes it, and every :class:`gateway.app.Runtime`
carries it, so a request reads all its hooks from the one runtime it started with. Each field is a
tuple (or ``None``/a read-only mapping): the hot path iterates a plain attribute and calls nothing
else. Built-in handlers come from the ``HANDLERS`` table each feature module exports
(:func:`handlers_of`), the same registry ``gateway check`` asks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict

from gateway.core.context import RequestContext
from gateway.core.errors import AuthenticationError
from gateway.pipeline.builtin import BuiltinHandler

if TYPE_CHECKING:
    from gateway.app import Runtime

__all__ = [
    "AuthFailed",
    "Check",
    "HeaderHook",
    "Hooks",
    "Observer",
    "OnStart",
    "PreAuth",
    "Preflight",
    "handlers_of",
]

# An extra pipeline check after scopes (allowed domains, rate limits, …): raise to refuse.
Check = Callable[[web.Request, RequestContext], Awaitable[None]]
# Answers a CORS preflight (OPTIONS with Origin + Access-Control-Request-Method) before routing.
Preflight = Callable[[web.Request, "Runtime", tuple[str, ...]], Awaitable[web.StreamResponse]]
# Runs before authentication (failed-auth throttling): raise to refuse without any lookup.
PreAuth = Callable[[web.Request, RequestContext], Awaitable[None]]
# Told about every authentication failure (to count guesses), before the 401 is sent.
AuthFailed = Callable[[web.Request, RequestContext, AuthenticationError], Awaitable[None]]
# Something to run when a request completes (access log, metrics).
Observer = Callable[[web.Request, web.StreamResponse | None, RequestContext], None]
# Called as a request enters, before any step (the in-flight gauge).
OnStart = Callable[[], None]
# Called with the request and the headers about to go upstream, right before the exchange.
HeaderHook = Callable[[web.Request, CIMultiDict[str]], None]


@dataclass(slots=True)
class Hooks:
    """Every hook point of the request path, in the order a request meets them.

    Extensions add to it during ``install(gw)`` (``gw.hooks.checks += (check,)``); after the
    gateway has installed every extension it calls :meth:`freeze`, and any later assignment raises.
    The set is fixed for the life of the process: every runtime a reload builds carries this same
    object, so the request path reads it from the one runtime a request started with.
    """

    on_start: tuple[OnStart, ...] = ()
    """Run by the edge as a request enters, before any step (the in-flight gauge)."""
    preflight: Preflight | None = None
    """Answers a CORS preflight before routing and authentication (origins); ``None``: no CORS."""
    pre_auth: tuple[PreAuth, ...] = ()
    """Run by ``decide`` before authentication on non-public routes (failed-auth throttling)."""
    auth_failed: tuple[AuthFailed, ...] = ()
    """Told about each authentication failure before the 401 is raised (counts guesses)."""
    checks: tuple[Check, ...] = ()
    """Run by ``decide`` after the scope check (allowed domains, rate limits): raise to refuse."""
    handlers: Mapping[str, BuiltinHandler] = field(default_factory=dict)
    """Built-in handlers by name, for routes with ``handler:``; run after ``decide`` allows."""
    upstream_headers: tuple[HeaderHook, ...] = ()
    """Last edits to each upstream request's headers (trace context), run by the forwarder."""
    observers: tuple[Observer, ...] = ()
    """Run by the edge when a request completes, refused or not (access log, metrics, traces)."""
    frozen: bool = field(default=False, repr=False, compare=False)
    """Set by :meth:`freeze`; from then on the object is read-only."""

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "frozen", False):
            raise AttributeError(f"hooks are frozen after install (setting {name!r})")
        object.__setattr__(self, name, value)

    def freeze(self) -> Hooks:
        """Make this object read-only (its handler table too); returns it."""
        self.handlers = MappingProxyType(dict(self.handlers))
        self.frozen = True
        return self


def handlers_of(modules: Iterable[ModuleType]) -> dict[str, BuiltinHandler]:
    """The built-in handlers the feature ``modules`` export in their ``HANDLERS`` tables."""
    found: dict[str, BuiltinHandler] = {}
    for module in modules:
        table: Mapping[str, BuiltinHandler] = getattr(module, "HANDLERS", {})
        for name, handler in table.items():
            if name in found:
                raise ValueError(f"built-in handler {name!r} is exported twice ({module.__name__})")
            found[name] = handler
    return found

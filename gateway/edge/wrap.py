"""What wraps every request on every listener: request id, errors → JSON, the completion observers.

:func:`edge` is that wrapper; :func:`with_edge` applies it to one handler (the proxy listener has no
middleware), :func:`edge_middleware` to a whole app (the admin listener). :func:`response_headers`
stamps ``Server`` and ``X-Request-Id`` on every response. :data:`GATEWAY` is the app key under which
each listener app holds its :class:`gateway.app.Gateway`; it lives here, not in :mod:`gateway.app`,
so handlers and features can find the gateway without importing the wiring.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.core.context import RequestContext
from gateway.core.errors import GatewayError
from gateway.edge.listen import SERVER
from gateway.edge.responses import error_response

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["GATEWAY", "edge", "edge_middleware", "response_headers", "with_edge"]

log = logging.getLogger("gateway")
GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """:func:`edge` as an aiohttp middleware, for the admin listener."""
    return await edge(request.app[GATEWAY], request, handler)


def with_edge(gw: Gateway, handler: Handler) -> Handler:
    """``handler`` wrapped in :func:`edge`: how the proxy listener's handlers get it.

    The proxy app has no middleware: aiohttp's middleware machinery (the chain built per
    request, the current-app fix-up) costs ~5 µs per request, and its only routes are the
    pipeline's catch-all and the pages extensions add, each of which is wrapped here instead.
    """

    async def edged(request: web.Request) -> web.StreamResponse:
        return await edge(gw, request, handler)

    return edged


async def edge(gw: Gateway, request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, errors → JSON, and the completion observers, around every request."""
    ctx = RequestContext.of(request)
    response: web.StreamResponse | None = None
    hooks = gw.runtime.hooks
    for start in hooks.on_start:
        start()
    try:
        try:
            response = await handler(request)
        except GatewayError as err:
            ctx.decision = err.code
            ctx.reason = err.reason
            response = error_response(err, ctx.request_id, gw.runtime.config.envelope)
        except web.HTTPException as exc:
            # aiohttp's own refusals (e.g. body too large) in our JSON shape.
            # Keep the headers the status needs (405 Allow, RFC 9110 §15.5.6).
            kept = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
            http_err = GatewayError(exc.reason, reason=f"http_{exc.status}", headers=kept)
            http_err.status, http_err.code = exc.status, exc.reason.upper().replace(" ", "_")
            ctx.decision, ctx.reason = http_err.code, http_err.reason
            response = error_response(http_err, ctx.request_id, gw.runtime.config.envelope)
        except Exception:
            log.exception("unhandled error in request %s", ctx.request_id)
            internal = GatewayError()
            ctx.decision, ctx.reason = internal.code, "exception"
            response = error_response(internal, ctx.request_id, gw.runtime.config.envelope)
        return response
    finally:
        for observe in hooks.observers:
            try:
                observe(request, response, ctx)
            except Exception:  # an observer must never break a request
                log.exception("observer failed")


async def response_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Request id and extra context headers on every response, streamed ones included."""
    ctx = RequestContext.of(request)
    response.headers["Server"] = SERVER  # aiohttp's default names Python's and its own versions
    response.headers["X-Request-Id"] = ctx.request_id
    for name, value in ctx.response_headers.items():
        response.headers[name] = value

"""The listener apps: the proxy app (extension pages, then the pipeline's catch-all), the bare app it
and the decision endpoint are built on, and the admin app with ``/healthz`` and ``/readyz``.

Here, not in :mod:`gateway.process`: features build on these apps (the decision endpoint on
:func:`create_bare_app`), and features depend on the edge, never on the process that runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.core.errors import StoreUnavailable
from gateway.edge import catchall
from gateway.edge.responses import json_response
from gateway.edge.wrap import GATEWAY, edge_middleware, response_headers, with_edge

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["create_admin_app", "create_bare_app", "create_proxy_app"]

# /readyz answers within READY_TIMEOUT whatever the store does.
READY_TIMEOUT = 0.8


def create_bare_app(gw: Gateway) -> web.Application:
    """An app with the proxy listener's limits and response headers, no middleware, no routes."""
    limits = gw.config.limits
    app = web.Application(
        handler_args={
            "max_field_size": limits.max_header_bytes,
            "max_line_size": limits.max_line_bytes,
            "max_headers": limits.max_headers,
            "keepalive_timeout": limits.idle_timeout,
        },
    )
    app[GATEWAY] = gw
    app.on_response_prepare.append(response_headers)
    return app


def create_proxy_app(gw: Gateway) -> web.Application:
    app = create_bare_app(gw)
    # Pages the gateway serves itself (the dashboard) go first: the catch-all below is the pipeline.
    # Extensions wrap their handlers with with_edge(); this app has no middleware.
    for ext in gw.extensions:
        install_proxy = getattr(ext, "install_proxy", None)
        if install_proxy is not None:
            install_proxy(app, gw)
    catchall.install(app, with_edge(gw, gw.handle))
    return app


def create_admin_app(gw: Gateway) -> web.Application:
    """The admin listener: health, readiness, and whatever admin routes extensions add."""
    app = web.Application(middlewares=[edge_middleware])
    app[GATEWAY] = gw
    app.on_response_prepare.append(response_headers)

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        feed = gw.feed
        propagation = (
            "polling"
            if feed.listening is None
            else "listening"
            if feed.listening
            else "reconnecting"
        )
        try:
            await gw.health.call(
                gw.store.ping,
                "readiness ping",
                limit=min(gw.health.lookup_timeout, READY_TIMEOUT),
                gated=False,  # a probe in its own right, and bounded: answers within a second
            )
        except StoreUnavailable:
            # Not ready (a load balancer should prefer other instances), but say whether cached
            # decisions are still being served within store.outage_grace.
            return json_response(
                {
                    "status": "unavailable",
                    "store": "unreachable",
                    "serving_cached": feed.serving_stale,
                    "propagation": propagation,
                },
                503,
            )
        return json_response(
            {
                "status": "ready",
                "store": "ok",
                "propagation": propagation,
                "config": gw.config.source,
                # Multi-target upstreams none of whose targets is healthy (issue 22); requests to
                # them still try every target ("panic" mode), so this does not make us unready.
                "upstreams_without_healthy_target": gw.balancers.unhealthy(),
            }
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    for ext in gw.extensions:
        install_admin = getattr(ext, "install_admin", None)
        if install_admin is not None:
            install_admin(app, gw)
    return app

"""The dashboard's routes: which handler answers which path under ``dashboard.path``, and the
static assets (``static/``, with the same security headers as the pages).

The handlers are split by job: :mod:`.login` signs in and out, :mod:`.tokens` lists, creates and
revokes tokens; :mod:`.common` holds what they share.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.core.errors import NotFound
from gateway.features.dashboard import render
from gateway.features.dashboard.common import secure_headers
from gateway.features.dashboard.login import login, login_form, logout
from gateway.features.dashboard.tokens import create, page, revoke

__all__ = ["Wrap", "add_routes"]

Wrap = Callable[[Handler], Handler]


async def static(request: web.Request) -> web.StreamResponse:
    asset = render.STATIC.get(request.match_info["name"])
    if asset is None:
        raise NotFound(reason="static")
    body, content_type = asset
    response = web.Response(body=body, content_type=content_type)
    response.headers["Cache-Control"] = "no-cache"
    return secure_headers(response)


def add_routes(app: web.Application, path: str, wrap: Wrap = lambda handler: handler) -> None:
    """The dashboard's pages under ``path``, each handler passed through ``wrap`` first."""
    r = app.router
    r.add_get(path, wrap(page))
    r.add_get(f"{path}/login", wrap(login_form))
    r.add_post(f"{path}/login", wrap(login))
    r.add_post(f"{path}/logout", wrap(logout))
    r.add_post(f"{path}/tokens", wrap(create))
    r.add_post(path + "/tokens/{id}/revoke", wrap(revoke))
    r.add_get(path + "/static/{name}", wrap(static))

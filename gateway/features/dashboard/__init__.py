"""The token dashboard: Settings -> API Keys, served by the gateway itself.

Every seed document sends its users to a dashboard page to manage tokens; with a ``dashboard:``
section in the config the gateway serves that page (server-rendered HTML and a little JavaScript)
on the listener it names:

* ``proxy`` (the default): end users already reach the gateway there, under the API's own host
  name, so ``https://api.example.com/settings/api-keys`` works with no extra exposure. The page's
  routes are matched before the pipeline's catch-all, so its path must not be a configured route.
* ``admin``: for deployments that keep self-service off the public host.

Modules: :mod:`.signin` (who is signed in, sign-in links, CSRF), :mod:`.views` (the routes),
:mod:`.login` (sign-in and sign-out pages), :mod:`.tokens` (the token page, create, revoke),
:mod:`.common` (what those handlers share), :mod:`.render` (templates in ``templates/``, assets in
``static/``). All token work goes through :class:`gateway.management.services.Services`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.edge.wrap import with_edge
from gateway.features.dashboard.views import add_routes

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["install_admin", "install_proxy"]


def install_proxy(app: web.Application, gw: Gateway) -> None:
    cfg = gw.config.dashboard
    if cfg is not None and cfg.listener == "proxy":
        # The proxy app has no middleware: wrap each page.
        add_routes(app, cfg.path, lambda handler: with_edge(gw, handler))


def install_admin(app: web.Application, gw: Gateway) -> None:
    cfg = gw.config.dashboard
    if cfg is not None and cfg.listener == "admin":
        add_routes(app, cfg.path)

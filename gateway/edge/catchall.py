"""The proxy listener's catch-all: one aiohttp resource that matches every request target.

A ``/{tail:.*}`` route would do the same with a regex per request, yet still miss some targets and
leave aiohttp to answer them with its own plain-text 404, outside the gateway's edge: paths
holding a decoded newline (``.`` stops there), targets that do not start with ``/``
(``OPTIONS *``) and targets with no path at all (``CONNECT host:443``, ``GET http://host``), which
aiohttp's router never walks to any resource. :func:`install` claims them all, so the pipeline
refuses them in JSON like every other bad path, and it costs one object per request instead of a
regex match.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from aiohttp.web_urldispatcher import ResourceRoute, UrlMappingMatchInfo
from yarl import URL

__all__ = ["CATCH_ALL", "CatchAll", "DirectRunner", "direct", "install"]

CATCH_ALL: web.AppKey[CatchAll] = web.AppKey("gateway.catch_all")

# Any, not aiohttp.typedefs.Handler: the same callable also becomes a web.Server's request_handler
# (DirectRunner), which aiohttp types as taking a BaseRequest.
Handler = Any


class CatchAll(web.AbstractResource):
    """Every method, every target, one handler; registered last, after any page routes."""

    def __init__(self, handler: Handler) -> None:
        super().__init__(name=None)
        # `Expect: 100-continue` is answered by the pipeline once the request is authorized
        # (gateway.forward.body.answer_expect), not by aiohttp before anything was checked.
        self.route = ResourceRoute("*", handler, self, expect_handler=_expect_later)

    @property
    def canonical(self) -> str:
        return "/"  # indexed at the root, so the router's walk from any path ends here

    def url_for(self, **kwargs: str) -> URL:
        return URL("/")

    async def resolve(self, request: web.Request) -> tuple[UrlMappingMatchInfo | None, set[str]]:
        return UrlMappingMatchInfo({}, self.route), {"*"}

    def add_prefix(self, prefix: str) -> None:
        raise NotImplementedError("the catch-all lives at the root of the proxy app")

    def get_info(self) -> Any:
        return {"catch_all": True}

    def raw_match(self, path: str) -> bool:
        return False  # never reused by add_resource() for another path

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[ResourceRoute]:
        yield self.route


async def _expect_later(request: web.Request) -> None:
    return None


def install(app: web.Application, handler: Handler) -> None:
    """Register :class:`CatchAll` last on ``app``, and make it answer what the router cannot.

    aiohttp's router walks a target's path from its end up to ``/`` and never starts for an empty
    one, so such a request would get aiohttp's ``MatchInfoError`` (404) outside every handler. The
    router's ``resolve`` is wrapped on this one app to hand those to the catch-all as well (an
    ``Application(router=...)`` subclass is deprecated by aiohttp).
    """
    catch_all = CatchAll(handler)
    app[CATCH_ALL] = catch_all
    router = app.router
    router.register_resource(catch_all)
    walk = router.resolve

    async def resolve(request: web.Request) -> Any:
        match = await walk(request)
        if match.http_exception is not None:
            return UrlMappingMatchInfo({}, catch_all.route)
        return match

    router.resolve = resolve  # type: ignore[method-assign]


def direct(app: web.Application) -> Handler:
    """A request handler for ``app``'s server (issue 18) that sends every request no page route
    could claim straight to the catch-all's handler, as the aiohttp floor's ``web.Server`` does:
    no router walk, match-info object or middleware check per request. Requests under a page
    route's literal prefix, and any with a percent-escape (the router matches decoded paths), go
    through the app as before. Responses still get the app's ``on_response_prepare`` headers:
    the request carries the catch-all's match info, built and frozen once here.
    """
    catch_all = app[CATCH_ALL]
    prefixes = tuple(
        resource.canonical.split("{", 1)[0]
        for resource in app.router.resources()
        if resource is not catch_all
    )
    if any(p in ("", "/") for p in prefixes):
        return app._handle  # a page at the root: every request may be one
    match = UrlMappingMatchInfo({}, catch_all.route)
    match.add_app(app)
    match.freeze()
    pipeline = catch_all.route.handler
    through_app = app._handle

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.raw_path
        if prefixes and ("%" in path or path.startswith(prefixes)):
            return await through_app(request)
        request._match_info = match
        return await pipeline(request)

    return handle


class DirectRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose server hands requests to :func:`direct`.

    aiohttp has no public hook for the handler an app's server calls, so the server the runner
    built (app started and frozen, request factory set) gets its ``request_handler`` replaced.
    """

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.request_handler = direct(self.app)
        return server

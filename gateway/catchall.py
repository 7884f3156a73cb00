"""The proxy listener's catch-all: one aiohttp resource that matches every request target.

A ``/{tail:.*}`` route would do the same with a regex per request, yet still miss two kinds of
target and leave aiohttp to answer them with its own plain-text 404, outside the gateway's edge:
paths holding a decoded newline (``.`` stops there) and targets that do not start with ``/``
(``OPTIONS *``). This resource claims them all, so the pipeline refuses them in JSON like every
other bad path, and it costs one object per request instead of a regex match.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from aiohttp.web_urldispatcher import ResourceRoute, UrlMappingMatchInfo
from yarl import URL

__all__ = ["CatchAll"]

Handler = Any  # aiohttp's own handler type is private


class CatchAll(web.AbstractResource):
    """Every method, every target, one handler; registered last, after any page routes."""

    def __init__(self, handler: Handler) -> None:
        super().__init__(name=None)
        self._route = ResourceRoute("*", handler, self)

    @property
    def canonical(self) -> str:
        return "/"  # indexed at the root, so the router's walk from any path ends here

    def url_for(self, **kwargs: str) -> URL:
        return URL("/")

    async def resolve(self, request: web.Request) -> tuple[UrlMappingMatchInfo | None, set[str]]:
        return UrlMappingMatchInfo({}, self._route), {"*"}

    def add_prefix(self, prefix: str) -> None:
        raise NotImplementedError("the catch-all lives at the root of the proxy app")

    def get_info(self) -> Any:
        return {"catch_all": True}

    def raw_match(self, path: str) -> bool:
        return False  # never reused by add_resource() for another path

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[ResourceRoute]:
        yield self._route

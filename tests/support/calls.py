"""The one way the tests make an HTTP request and read the answer.

:func:`send` makes the request with the test's ``aiohttp.ClientSession`` and returns everything a
test asserts on (status, headers, raw and decoded body) after the response is released, so no
test keeps a connection open by holding a response. :func:`call` is its shortcut for the common
``(status, json)`` pair. Tests that always ask the same thing (one route, one credential) wrap it
in a one-line function of their own; the request itself is made only here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.typedefs import LooseHeaders
from multidict import CIMultiDictProxy
from yarl import URL


@dataclass(frozen=True, slots=True)
class Reply:
    """What came back: the status, the headers and the body, read in full."""

    status: int
    headers: CIMultiDictProxy[str]
    raw: bytes

    @property
    def json(self) -> Any:
        """The body decoded as JSON; ``None`` when it is empty or not JSON."""
        if not self.raw:
            return None
        try:
            return json.loads(self.raw)
        except ValueError:
            return None


async def send(
    http: aiohttp.ClientSession,
    method: str,
    url: str | URL,
    headers: LooseHeaders | None = None,
    **kw: Any,
) -> Reply:
    """``method url`` with ``headers`` (and any other ``ClientSession.request`` keyword).

    ``headers`` goes to aiohttp as given, so a list of pairs can repeat a header.
    """
    async with http.request(method, url, headers=headers, **kw) as r:
        return Reply(r.status, r.headers, await r.read())


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str | URL,
    headers: LooseHeaders | None = None,
    **kw: Any,
) -> tuple[int, Any]:
    """Status and decoded JSON body (``None`` when empty or not JSON)."""
    reply = await send(http, method, url, headers, **kw)
    return reply.status, reply.json

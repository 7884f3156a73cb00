"""The request body on its way upstream, and ``Expect``.

Bodies are relayed in chunks, each wait for client bytes bounded by ``limits.body_read_timeout``
(408) and the total by the route's body limit (413); a ``_method`` field in a multipart or untyped
POST body is refused (400). ``_method`` is stripped from the query and from urlencoded form bodies
unless the route honours overrides. ``Expect: 100-continue`` is answered only once the request was
authorized; any other expectation gets 417.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import unquote_plus

import aiohttp
from aiohttp import web
from aiohttp.http import HttpVersion11

from gateway.core.errors import BadRequest, BodyTimeout, ExpectationFailed, PayloadTooLarge
from gateway.edge.headerpolicy import is_method_param
from gateway.pipeline.override import BodyOverrideScanner

__all__ = [
    "FORM_BODY",
    "FORM_MAX",
    "BodyReader",
    "answer_expect",
    "strip_form_method",
    "strip_method_param",
]

# An urlencoded form is read whole to drop its `_method`; bigger ones are refused (413).
FORM_MAX = 1024 * 1024
FORM_BODY: web.RequestKey[bytes] = web.RequestKey("gateway.form_body", bytes)


async def answer_expect(request: web.Request) -> None:
    """Answer ``Expect``: ``100 Continue`` on HTTP/1.1, 417 for any other expectation."""
    if request.headers.get("Expect", "").strip().lower() != "100-continue":
        raise ExpectationFailed(reason="expect_unknown")
    if request.version == HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response proper has not started


class BodyReader:
    """A request body read for the upstream: counted against ``limit``, each wait bounded."""

    __slots__ = ("exceeded", "limit", "overridden", "pause", "scanner", "seen", "source", "stalled")

    def __init__(
        self,
        source: aiohttp.StreamReader,
        limit: int | None,
        pause: float,
        scanner: BodyOverrideScanner | None = None,
    ) -> None:
        self.source = source
        self.limit = limit
        self.pause = pause
        self.scanner = scanner
        self.seen = 0
        self.exceeded = False
        self.stalled = False
        self.overridden = False

    async def chunks(self) -> AsyncIterator[bytes]:
        source, limit = self.source, self.limit
        while True:
            try:
                async with asyncio.timeout(self.pause):
                    chunk = await source.readany()
            except TimeoutError:
                self.stalled = True
                raise BodyTimeout(reason="body_stalled") from None
            if not chunk:
                return
            self.seen += len(chunk)
            if limit is not None and self.seen > limit:
                self.exceeded = True
                raise PayloadTooLarge(reason="streamed_length")
            if self.scanner is not None and self.scanner.finds_override(chunk):
                # Never sent: the upstream gets a cut-off body it will not act on.
                self.overridden = True
                raise _override_in_body()
            yield chunk

    def raise_if_failed(self) -> None:
        """Raise the client-side reason the exchange failed, if it was the body's."""
        if self.stalled:
            raise BodyTimeout(reason="body_stalled")
        if self.exceeded:
            raise PayloadTooLarge(
                f"The request body may be at most {self.limit} bytes on this route.",
                reason="streamed_length",
            )
        if self.overridden:
            raise _override_in_body()


def _override_in_body() -> BadRequest:
    return BadRequest(
        "A _method field in a multipart or untyped POST body is not accepted: "
        "send the method in the request line.",
        reason="override_in_body",
    )


def strip_method_param(query: str) -> str:
    """``query`` without its ``_method`` parameters, however they are escaped or spelled."""
    kept = [p for p in query.split("&") if not is_method_param(unquote_plus(p.partition("=")[0]))]
    return "&".join(kept)


def strip_form_method(body: bytes) -> bytes:
    """An urlencoded form without its ``_method`` fields (unchanged when it has none)."""
    if b"method" not in body and b"%" not in body:  # `_%6Dethod` is `_method` once decoded
        return body
    kept = [
        p
        for p in body.split(b"&")
        if not is_method_param(unquote_plus(p.partition(b"=")[0].decode("latin-1")))
    ]
    return b"&".join(kept)

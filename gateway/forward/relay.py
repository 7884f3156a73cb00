"""Streaming an upstream's response back to the client.

Hop-by-hop headers and any the upstream's ``Connection`` lists are dropped. Only small responses
with a known length are read whole, since that is cheaper than chunked relaying and bounded by
:data:`SMALL_BODY`; the rest stream in :data:`CHUNK`-sized pieces, and an upstream failing once the
head is sent cuts the client's connection (the only honest signal left).
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.core.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.edge.headerpolicy import HOP_BY_HOP
from gateway.forward.failures import failure_reason
from gateway.forward.headers import connection_listed

__all__ = ["relay"]

log = logging.getLogger("gateway.proxy")

SMALL_BODY = 64 * 1024
CHUNK = 64 * 1024


async def relay(
    request: web.Request,
    status: int,
    reason: str | None,
    headers: CIMultiDictProxy[str],
    content: aiohttp.StreamReader,
) -> web.StreamResponse:
    """The upstream's response to the client: hop-by-hop headers dropped, small bodies read whole,
    the rest streamed in chunks."""
    out_headers: CIMultiDict[str] = CIMultiDict()
    drop = _drop_set(headers)
    for name, value in headers.items():
        if name.lower() not in drop:
            out_headers.add(name, value)
    declared = headers.get("Content-Length")
    length = int(declared) if declared is not None else None  # the parser checked it
    if request.method == "HEAD" or status in (204, 304):
        if length is not None and request.method == "HEAD":
            out_headers["Content-Length"] = str(length)
        r = web.StreamResponse(status=status, reason=reason, headers=out_headers)
        if request.method == "HEAD" and length is not None:
            r.content_length = length
        await r.prepare(request)
        await r.write_eof()
        return r
    if length is not None and length <= SMALL_BODY:
        try:
            data = await content.read()  # bounded by sock_read, like every upstream read
        except TimeoutError as exc:
            raise UpstreamTimeout(reason="upstream_timeout") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(reason=failure_reason(exc)) from exc
        return web.Response(status=status, reason=reason, body=data, headers=out_headers)
    stream = web.StreamResponse(status=status, reason=reason, headers=out_headers)
    if length is not None:
        stream.content_length = length
    await stream.prepare(request)
    try:
        async for chunk in content.iter_chunked(CHUNK):
            await stream.write(chunk)
    except (aiohttp.ClientError, TimeoutError, ConnectionResetError) as exc:
        # Headers are already sent: the only honest signal left is to cut the connection, so
        # the client sees a truncated response instead of a hang or a falsely complete body.
        log.warning("upstream failed mid-response: %s", failure_reason(exc))
        if request.transport is not None:
            request.transport.close()
        return stream
    await stream.write_eof()
    return stream


def _drop_set(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    """Hop-by-hop names plus any the ``Connection`` header lists (copied only when it lists some)."""
    extra = connection_listed(headers)
    return HOP_BY_HOP if extra is None else HOP_BY_HOP | extra

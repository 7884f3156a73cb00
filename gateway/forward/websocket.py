"""WebSocket proxying, after the pipeline has authorized the upgrade request."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway.core.errors import UpstreamUnavailable

__all__ = ["is_websocket_upgrade", "proxy_websocket"]

_WS_DROP = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
    }
)


def is_websocket_upgrade(request: web.Request) -> bool:
    return (
        request.headers.get("Upgrade", "").lower() == "websocket"
        and "upgrade" in request.headers.get("Connection", "").lower()
    )


async def proxy_websocket(
    request: web.Request,
    upstream_client: aiohttp.ClientSession,
    url: str,
    headers: CIMultiDict[str],
    close_timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    server_name: str | None = None,
) -> web.WebSocketResponse:
    for name in list(headers):
        if name.lower() in _WS_DROP:
            del headers[name]
    protocols = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    ws_url = "ws" + url[4:] if url.startswith("http") else url
    try:
        upstream = await upstream_client.ws_connect(
            ws_url,
            headers=headers,
            protocols=protocols,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=close_timeout),
            autoping=True,
            # An https upstream's own CA, client certificate and SNI name (issue 22).
            ssl=ssl_context if ssl_context is not None else True,
            server_hostname=server_name,
        )
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UpstreamUnavailable(reason="upstream_ws") from exc
    downstream = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else ())
    await downstream.prepare(request)

    async def pump(
        src: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
        dst: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
    ) -> None:
        async for msg in src:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await dst.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            else:
                break

    tasks = [
        asyncio.create_task(pump(downstream, upstream)),
        asyncio.create_task(pump(upstream, downstream)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await upstream.close()
        await downstream.close()
    return downstream

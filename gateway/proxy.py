"""The forwarder: streams an authorized request upstream and the response back.

Headers are rebuilt, never passed through blindly: hop-by-hop headers (and any named in
``Connection``) are dropped; every client-sent header that collides with an identity header — in any
letter case, and spelled with ``_`` for ``-``, which WSGI upstreams read as the same name — is
removed before the gateway's own are added; the credential is removed unless the route keeps it;
``X-Forwarded-*`` from a client is trusted only when it connects from a configured proxy address.
Bodies stream both ways in chunks; only small responses with a known length are read whole, since
that is cheaper than chunked relaying and bounded by :data:`SMALL_BODY`.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.config import Config, IdentityHeaders, Route
from gateway.errors import PayloadTooLarge, UpstreamTimeout, UpstreamUnavailable
from gateway.identity import Identity
from gateway.upstream import UpstreamPool, UpstreamPools

__all__ = ["Forwarder", "HeaderHook", "header_key", "make_client_session"]

log = logging.getLogger("gateway.proxy")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
FORWARDED = frozenset(
    {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip"}
)
# Called with the request and the headers about to go upstream, right before the exchange.
HeaderHook = Callable[[web.Request, CIMultiDict[str]], None]
SMALL_BODY = 64 * 1024
CHUNK = 64 * 1024


def header_key(name: str) -> str:
    """The name as upstream frameworks compare it: case-folded, ``_`` read as ``-``."""
    return name.lower().replace("_", "-")


def make_client_session(limit: int = 0) -> aiohttp.ClientSession:
    """One shared session: pooled keep-alive, no cookie jar, no decompression, no added headers."""
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=0, keepalive_timeout=30, ttl_dns_cache=300
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        timeout=aiohttp.ClientTimeout(total=None),
    )


class Forwarder:
    def __init__(
        self,
        config: Config,
        session: aiohttp.ClientSession,
        pools: UpstreamPools,
        credential_headers: Iterable[str],
        header_hooks: Sequence[HeaderHook] = (),
    ) -> None:
        self.session = session
        # Last say over the upstream request's headers (trace context); empty costs one loop test.
        self.header_hooks = tuple(header_hooks)
        self.pools = pools  # bodiless requests to http upstreams; the session serves the rest
        self.names: IdentityHeaders = config.identity_headers
        self.identity_keys = frozenset(header_key(n) for n in config.identity_headers.names())
        self.credential_keys = frozenset(header_key(n) for n in credential_headers)
        self.trusted = config.trusted_proxies
        self.upstreams = config.upstreams
        self.default_max_body = config.limits.max_body_bytes
        # One timeout object per upstream, built at load time rather than per request:
        # sock_connect bounds connecting, sock_read every wait for upstream bytes; forward() adds
        # the upstream's timeout over sending the request and receiving the response head, and
        # limits.request_timeout bounds the whole request in Gateway.handle.
        self.timeouts = {
            name: aiohttp.ClientTimeout(
                total=None, sock_connect=up.connect_timeout, sock_read=up.timeout
            )
            for name, up in config.upstreams.items()
        }

    # -- request side ------------------------------------------------------------------------------

    def _trusted_peer(self, peer: str | None) -> bool:
        if not peer or not self.trusted:
            return False
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(addr in net for net in self.trusted)

    def build_headers(
        self, request: web.Request, route: Route, identity: Identity | None, request_id: str
    ) -> CIMultiDict[str]:
        incoming = request.headers
        drop = _drop_set(incoming)
        out: CIMultiDict[str] = CIMultiDict()
        for name, value in incoming.items():
            key = name.lower()
            if key in drop or key in FORWARDED:
                continue
            norm = key.replace("_", "-")
            if norm in self.identity_keys or norm == "x-request-id":
                continue
            if norm in self.credential_keys and not route.keep_credential:
                continue
            out.add(name, value)
        peer = request.remote or ""
        if self._trusted_peer(peer):
            prior = ", ".join(incoming.getall("X-Forwarded-For", ()))
            out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
            out["X-Forwarded-Proto"] = incoming.get("X-Forwarded-Proto", request.scheme)
            out["X-Forwarded-Host"] = incoming.get("X-Forwarded-Host", incoming.get("Host", ""))
        else:
            out["X-Forwarded-For"] = peer
            out["X-Forwarded-Proto"] = request.scheme
            out["X-Forwarded-Host"] = incoming.get("Host", "")
        out["X-Request-Id"] = request_id
        if identity is not None:
            n = self.names
            ws = identity.workspace
            if identity.token_id:
                out[n.token_id] = identity.token_id
            if identity.user_id:
                out[n.user_id] = identity.user_id
            out[n.workspace_id] = ws.id
            out[n.workspace_slug] = ws.slug
            out[n.scopes] = _scope_list(identity.scopes)
            out[n.auth_method] = identity.auth_method
            out[n.environment] = identity.environment
        for hook in self.header_hooks:
            hook(request, out)
        return out

    @staticmethod
    def target_path(route: Route, path: str) -> str:
        if route.strip_prefix and path.startswith(route.strip_prefix):
            path = path[len(route.strip_prefix) :] or "/"
            if not path.startswith("/"):
                path = "/" + path
        if route.add_prefix:
            path = route.add_prefix.rstrip("/") + path
        return path

    # -- the exchange ------------------------------------------------------------------------------

    async def forward(
        self,
        request: web.Request,
        route: Route,
        base_url: str,
        path: str,
        identity: Identity | None,
        request_id: str,
        timing: dict[str, float],
    ) -> web.StreamResponse:
        name = route.upstream or ""
        query = request.raw_path.partition("?")[2]
        target = self.target_path(route, path) + (f"?{query}" if query else "")
        headers = self.build_headers(request, route, identity, request_id)
        if not request.body_exists and (pool := self.pools.get(base_url)) is not None:
            return await self._forward_lean(request, pool, name, target, headers, timing)
        url = URL(base_url + target, encoded=True)
        limit = route.max_body_bytes if route.max_body_bytes is not None else self.default_max_body
        body: aiohttp.StreamReader | AsyncIterator[bytes] | None = (
            request.content if request.body_exists else None
        )
        counter: _BodyLimit | None = None
        if body is not None and request.content_length is not None:
            if limit is not None and request.content_length > limit:
                # Refused before a byte reaches the upstream.
                raise PayloadTooLarge(
                    f"The request body may be at most {limit} bytes on this route.",
                    reason="declared_length",
                )
            headers["Content-Length"] = str(request.content_length)
        elif body is not None and limit is not None:
            # Chunked: count while streaming and cut the upstream request at the limit.
            counter = _BodyLimit(request.content, limit)
            body = counter.chunks()
        started = time.perf_counter()
        try:
            # sock_read alone restarts with every byte, so an upstream trickling its response
            # head would never time out: request + head as a whole get the upstream's timeout.
            async with asyncio.timeout(self.upstreams[name].timeout):
                resp = await self.session.request(
                    request.method,
                    url,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    timeout=self.timeouts[name],
                    compress=None,
                )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(reason="upstream_timeout") from exc
        except (aiohttp.ClientError, PayloadTooLarge) as exc:
            if counter is not None and counter.exceeded:
                raise PayloadTooLarge(
                    f"The request body may be at most {limit} bytes on this route.",
                    reason="streamed_length",
                ) from None
            raise UpstreamUnavailable(reason=_reason(exc)) from exc
        finally:
            timing["upstream"] = time.perf_counter() - started
        if counter is not None and counter.exceeded:
            # The upstream answered before reading the whole body; still refuse the client.
            resp.close()
            raise PayloadTooLarge(
                f"The request body may be at most {limit} bytes on this route.",
                reason="streamed_length",
            )
        try:
            return await self._relay(request, resp.status, resp.reason, resp.headers, resp.content)
        finally:
            resp.release()
            timing["upstream"] = time.perf_counter() - started

    async def _forward_lean(
        self,
        request: web.Request,
        pool: UpstreamPool,
        name: str,
        target: str,
        headers: CIMultiDict[str],
        timing: dict[str, float],
    ) -> web.StreamResponse:
        """A bodiless request over the pooled exchange of :mod:`gateway.upstream`."""
        up = self.upstreams[name]
        started = time.perf_counter()
        try:
            # As on the ClientSession path, the upstream's timeout bounds request + response head.
            proto, message, payload = await pool.send(
                request.method,
                target,
                headers,
                connect_timeout=up.connect_timeout,
                read_timeout=up.timeout,
                head_timeout=up.timeout,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(reason="upstream_timeout") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(reason=_reason(exc)) from exc
        except HttpProcessingError as exc:  # an unparseable response head
            raise UpstreamUnavailable(reason="upstream_error") from exc
        finally:
            timing["upstream"] = time.perf_counter() - started
        try:
            return await self._relay(
                request, message.code, message.reason, message.headers, payload
            )
        finally:
            # Reused only when the body was read to its end; otherwise closed.
            pool.release(proto)
            timing["upstream"] = time.perf_counter() - started

    async def _relay(
        self,
        request: web.Request,
        status: int,
        reason: str | None,
        headers: CIMultiDictProxy[str],
        content: aiohttp.StreamReader,
    ) -> web.StreamResponse:
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
                raise UpstreamUnavailable(reason=_reason(exc)) from exc
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
            log.warning("upstream failed mid-response: %s", _reason(exc))
            if request.transport is not None:
                request.transport.close()
            return stream
        await stream.write_eof()
        return stream


class _BodyLimit:
    """A chunked request body relayed while counting; stops at ``limit`` bytes."""

    def __init__(self, source: aiohttp.StreamReader, limit: int) -> None:
        self.source = source
        self.limit = limit
        self.seen = 0
        self.exceeded = False

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self.source.iter_chunked(CHUNK):
            self.seen += len(chunk)
            if self.seen > self.limit:
                self.exceeded = True
                raise PayloadTooLarge(reason="streamed_length")
            yield chunk


@functools.lru_cache(maxsize=4096)  # bounded: token scopes are arbitrary subsets
def _scope_list(scopes: frozenset[str]) -> str:
    """The scopes header value, sorted; remembered per set (few distinct sets, asked per request)."""
    return " ".join(sorted(scopes))


def _drop_set(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    """Hop-by-hop names plus any the ``Connection`` header lists (copied only when it lists some)."""
    listed = headers.getall("Connection", ())
    if not listed:
        return HOP_BY_HOP
    extra = {t.strip().lower() for value in listed for t in value.split(",")}
    return HOP_BY_HOP if extra <= HOP_BY_HOP else HOP_BY_HOP | extra


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "upstream_refused"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "upstream_disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "upstream_payload"
    if isinstance(exc, aiohttp.ClientOSError):
        return "upstream_reset"
    return "upstream_error"

"""The forwarder: streams an authorized request upstream and the response back.

Headers are rebuilt, never passed through blindly: which client headers pass is decided by
:mod:`gateway.edge.headerpolicy` (hop-by-hop and gateway-owned names, identity and credential headers
and cookies, client-address headers from untrusted peers, method and URL overrides — compared in any
letter case and with ``_`` read as ``-``); headers named in ``Connection`` are dropped; then the
gateway adds ``X-Forwarded-*`` (trusting a client's only from a configured proxy address), the
request id and the identity headers. ``_method`` is stripped from the query and from urlencoded
form bodies unless the route honours overrides.

Bodies stream both ways in chunks; each wait for request-body bytes is bounded by
``limits.body_read_timeout`` (408), and an upstream's ``max_connections`` caps its requests in
flight (503 ``UPSTREAM_BUSY``). Only small responses with a known length are read whole, since
that is cheaper than chunked relaying and bounded by :data:`SMALL_BODY`.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from urllib.parse import unquote_plus

import aiohttp
from aiohttp import web
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.config import Config, IdentityHeaders, Route
from gateway.core.errors import (
    BadRequest,
    BodyTimeout,
    ExpectationFailed,
    PayloadTooLarge,
    UpstreamBusy,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.core.identity import Identity
from gateway.edge.headerpolicy import (
    CLIENT_ADDRESS,
    CREDENTIAL,
    DROP,
    FORWARDED,
    HOP_BY_HOP,
    METHOD_OVERRIDE,
    HeaderPolicy,
    credential_cookies,
    is_method_param,
)
from gateway.edge.tls import upstream_context
from gateway.forward.balancer import Balancers, TargetSet
from gateway.forward.upstream import IDEMPOTENT, UpstreamPool, UpstreamPools
from gateway.pipeline.override import BodyOverrideScanner

__all__ = ["Forwarder", "HeaderHook", "answer_expect", "make_upstream_client", "strip_method_param"]

log = logging.getLogger("gateway.proxy")

# Called with the request and the headers about to go upstream, right before the exchange.
HeaderHook = Callable[[web.Request, CIMultiDict[str]], None]
SMALL_BODY = 64 * 1024
CHUNK = 64 * 1024
# An urlencoded form is read whole to drop its `_method`; bigger ones are refused (413).
FORM_MAX = 1024 * 1024
FORM_BODY: web.RequestKey[bytes] = web.RequestKey("gateway.form_body", bytes)
# What every proxy in front of the decision endpoint sets itself; the rest of FORWARDED (a
# client's X-Real-IP, Forwarded) is named for removal like any header proxy mode withholds.
PROXY_SETS = FORWARDED - {"x-real-ip", "forwarded"}


def make_upstream_client(limit: int = 0) -> aiohttp.ClientSession:
    """The one shared client to upstreams: pooled keep-alive, no cookie jar, no decompression, no added headers."""
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
        balancers: Balancers | None = None,
        header_hooks: Sequence[HeaderHook] = (),
    ) -> None:
        self.session = session
        self.balancers = balancers  # upstreams with several targets (issue 22)
        # Last say over the upstream request's headers (trace context); empty costs one loop test.
        self.header_hooks = tuple(header_hooks)
        self.pools = pools  # bodiless requests to http(s) upstreams; the session serves the rest
        self.names: IdentityHeaders = config.identity_headers
        self.policy = HeaderPolicy(config, credential_headers, credential_cookies(config))
        self.trusted = config.trusted_proxies
        self.upstreams = config.upstreams
        self.default_max_body = config.limits.max_body_bytes
        self.body_pause = config.limits.body_read_timeout
        # Upstreams with a connection cap, and how many requests each has in flight (this worker).
        self.caps = {
            name: up.max_connections
            for name, up in config.upstreams.items()
            if up.max_connections is not None
        }
        self.in_flight: dict[str, int] = {}
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
        # https upstreams: the verifying client context (CA, client certificate) and SNI name.
        self.tls = {
            name: (upstream_context(up.tls), up.tls.server_name if up.tls else None)
            for name, up in config.upstreams.items()
            if any(u.startswith("https://") for u in (*up.targets, *up.environments.values()))
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
        self,
        request: web.Request,
        route: Route,
        identity: Identity | None,
        request_id: str,
        identity_headers: tuple[tuple[str, str], ...] | None = None,
    ) -> CIMultiDict[str]:
        """The headers the upstream gets: the client's own (see :mod:`gateway.edge.headerpolicy`),
        ``X-Forwarded-*``, the request id and the identity headers (``identity_headers`` when
        the caller has them already: :meth:`identity_block` of ``identity``)."""
        incoming = request.headers
        listed = _connection_listed(incoming)
        policy = self.policy
        known = policy.verdicts  # one dict lookup per header; a method call only for new names
        peer = request.remote or ""
        trusted = self._trusted_peer(peer)
        out: CIMultiDict[str] = CIMultiDict()
        for name, value in incoming.items():
            key = name.lower()
            v = known.get(key)
            if v is None:
                v = policy.verdict(key)
            if v:  # anything but KEEP: one comparison on the common path
                if v == DROP:
                    continue
                if v == CREDENTIAL:
                    if not route.keep_credential:
                        continue
                elif v == CLIENT_ADDRESS:
                    if not trusted:
                        continue
                elif v == METHOD_OVERRIDE:
                    if not route.method_override:
                        continue
                elif not route.keep_credential:  # COOKIE
                    value = policy.strip_cookies(value)
                    if not value:
                        continue
            if listed is not None and key in listed:
                continue
            out.add(name, value)
        if trusted:
            prior = ", ".join(incoming.getall("X-Forwarded-For", ()))
            out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
            out["X-Forwarded-Proto"] = incoming.get("X-Forwarded-Proto", request.scheme)
            out["X-Forwarded-Host"] = incoming.get("X-Forwarded-Host", incoming.get("Host", ""))
        else:
            out["X-Forwarded-For"] = peer
            out["X-Forwarded-Proto"] = request.scheme
            out["X-Forwarded-Host"] = incoming.get("Host", "")
        out["X-Request-Id"] = request_id
        if identity_headers is not None:
            for name, value in identity_headers:
                out[name] = value
        elif identity is not None:
            self.add_identity(out, identity)
        for hook in self.header_hooks:
            hook(request, out)
        return out

    def add_identity(self, out: CIMultiDict[str], identity: Identity) -> None:
        """The identity headers the upstream trusts: sent upstream in proxy mode, and returned to
        the proxy by the external-authorization decision endpoint (:mod:`gateway.features.extauth`)."""
        for name, value in self.identity_block(identity):
            out[name] = value

    def identity_block(self, identity: Identity) -> tuple[tuple[str, str], ...]:
        """The identity headers as (name, value) pairs, in order; the cache-hit memo keeps them
        per identity (gateway/pipeline/memo.py), so a hit merges them without recomputing."""
        n = self.names
        ws = identity.workspace
        block = []
        if identity.token_id:
            block.append((n.token_id, identity.token_id))
        if identity.user_id:
            block.append((n.user_id, identity.user_id))
        block += [
            (n.workspace_id, ws.id),
            (n.workspace_slug, ws.slug),
            (n.scopes, _scope_list(identity.scopes)),
            (n.auth_method, identity.auth_method),
            (n.environment, identity.environment),
        ]
        return tuple(block)

    def stripped(self, incoming: CIMultiDictProxy[str], route: Route) -> list[str]:
        """The client's header names :meth:`build_headers` would withhold from the upstream for
        the upstream's sake: what a proxy deciding through the gateway must strip itself.

        The same verdicts as proxy mode (:mod:`gateway.edge.headerpolicy`): credentials (unless the
        route keeps them), the gateway's namespace and identity headers, `_` twins, URL overrides,
        method overrides (unless the route honours them) and client-address headers (the peer
        asking is the proxy, not the client, so they are never trusted here). Hop-by-hop headers
        and ``X-Forwarded-For/-Proto/-Host`` are the proxy's own business (a client's
        ``X-Real-IP`` and ``Forwarded`` are named: Envoy and Traefik set neither); a credential cookie cannot be named
        without dropping every cookie, so it is not (docs/external-auth.md says so).
        """
        policy = self.policy
        out = set()
        for name in incoming:
            key = name.lower()
            v = policy.verdict(key)
            if v == DROP:
                if key not in HOP_BY_HOP and key not in PROXY_SETS:
                    out.add(key)
            elif (
                (v == CREDENTIAL and not route.keep_credential)
                or (v == METHOD_OVERRIDE and not route.method_override)
                or v == CLIENT_ADDRESS
            ):
                out.add(key)
        return sorted(out)

    @staticmethod
    def target_path(route: Route, path: str) -> str:
        if route.strip_prefix and path.startswith(route.strip_prefix):
            path = path[len(route.strip_prefix) :] or "/"
            if not path.startswith("/"):
                path = "/" + path
        if route.add_prefix:
            path = route.add_prefix.rstrip("/") + path
        return path

    @staticmethod
    def is_form(request: web.Request) -> bool:
        ctype = request.headers.get("Content-Type")
        return ctype is not None and ctype.lower().startswith("application/x-www-form-urlencoded")

    async def form_body(self, request: web.Request, limit: int | None = None) -> bytes:
        """The urlencoded request body, read once (each wait bounded) and kept on the request."""
        if FORM_BODY in request:
            return request[FORM_BODY]
        cap = FORM_MAX if limit is None else min(limit, FORM_MAX)
        reader = _Body(request.content, cap, self.body_pause)
        try:
            data = b"".join([chunk async for chunk in reader.chunks()])
        except PayloadTooLarge:
            raise PayloadTooLarge(
                f"A form body may be at most {cap} bytes here.", reason="form_length"
            ) from None
        request[FORM_BODY] = data
        return data

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
        identity_headers: tuple[tuple[str, str], ...] | None = None,
    ) -> web.StreamResponse:
        name = route.upstream or ""
        cap = self.caps.get(name)
        if cap is not None:
            # Each request in flight holds one upstream connection: past the cap, refuse at
            # once rather than queue (a queue would hold the client's connection instead).
            busy = self.in_flight.get(name, 0)
            if busy >= cap:
                raise UpstreamBusy(reason="upstream_busy", headers={"Retry-After": "1"})
            self.in_flight[name] = busy + 1
        try:
            query = request.raw_path.partition("?")[2]
            if query and ("method" in query or "%" in query) and not route.method_override:
                query = strip_method_param(query)  # `_method` (any escaping): as the headers
            target = self.target_path(route, path) + (f"?{query}" if query else "")
            headers = self.build_headers(request, route, identity, request_id, identity_headers)
            targets = self.balancers.get(name) if self.balancers is not None else None
            if targets is None or base_url != self.upstreams[name].url:
                # One target (or another environment's URL): no choice to make.
                return await self._exchange(request, route, name, base_url, target, headers, timing)
            return await self._balanced(request, route, targets, target, headers, timing)
        finally:
            if cap is not None:
                self.in_flight[name] -= 1

    def websocket_target(
        self, name: str, base_url: str
    ) -> tuple[str, ssl.SSLContext | None, str | None]:
        """Where a WebSocket upgrade goes: a healthy target when there are several (no retry: an
        upgrade is not idempotent), and the TLS settings for it."""
        targets = self.balancers.get(name) if self.balancers is not None else None
        if targets is not None and base_url == self.upstreams[name].url:
            chosen = targets.pick(set())
            base_url = chosen.url if chosen is not None else base_url
        return (base_url, *self._tls_for(name, base_url))

    def _tls_for(self, name: str, base_url: str) -> tuple[ssl.SSLContext | None, str | None]:
        if not base_url.startswith("https:"):
            return None, None
        return self.tls.get(name, (None, None))

    async def _balanced(
        self,
        request: web.Request,
        route: Route,
        targets: TargetSet,
        target: str,
        headers: CIMultiDict[str],
        timing: dict[str, float],
    ) -> web.StreamResponse:
        """The exchange with one of several targets; another one only after a connect failure.

        A connect failure means not a byte of the request left the gateway, so an idempotent
        request is safe to send elsewhere; a failure after connecting is never retried (the
        upstream may have acted on it), nor is any non-idempotent request.
        """
        tried: set[str] = set()
        retry = request.method in IDEMPOTENT
        while True:
            chosen = targets.pick(tried)
            assert chosen is not None  # the loop ends before every target was tried
            tried.add(chosen.url)
            chosen.in_flight += 1
            try:
                response = await self._exchange(
                    request, route, targets.name, chosen.url, target, headers, timing
                )
            except UpstreamUnavailable as err:
                refused = isinstance(err.__cause__, aiohttp.ClientConnectorError)
                targets.record(chosen, "connect_failure" if refused else "failure")
                if refused and retry and len(tried) < len(targets.targets):
                    log.info("upstream %s: retrying on another target", targets.name)
                    continue
                raise
            except UpstreamTimeout:
                targets.record(chosen, "timeout")
                raise
            finally:
                chosen.in_flight -= 1
            targets.record(chosen, "ok")
            return response

    async def _exchange(
        self,
        request: web.Request,
        route: Route,
        name: str,
        base_url: str,
        target: str,
        headers: CIMultiDict[str],
        timing: dict[str, float],
    ) -> web.StreamResponse:
        """One exchange with one upstream URL: bodiless requests over the pooled fast path, the
        rest (a body, or an upstream without a pool) through the ClientSession."""
        ssl_context, server_name = self._tls_for(name, base_url)
        if (
            not request.body_exists
            and (pool := self.pools.get(base_url, ssl_context, server_name)) is not None
        ):
            return await self._forward_lean(request, pool, name, target, headers, timing)
        url = URL(base_url + target, encoded=True)
        limit = route.max_body_bytes if route.max_body_bytes is not None else self.default_max_body
        reader: _Body | None = None
        body: bytes | AsyncIterator[bytes] | None = None
        if request.body_exists:
            if limit is not None and (request.content_length or 0) > limit:
                # Refused before a byte reaches the upstream.
                raise PayloadTooLarge(
                    f"The request body may be at most {limit} bytes on this route.",
                    reason="declared_length",
                )
            if self.is_form(request):
                # A form's `_method` is an override like the headers: read the (bounded) form,
                # drop it unless the route honours it, and send the rest with its own length.
                body = await self.form_body(request, limit)
                if not route.method_override:
                    body = strip_form_method(body)
                headers["Content-Length"] = str(len(body))
            else:
                # Rack and PHP read `_method` from multipart and untyped POST bodies too.
                scanner = BodyOverrideScanner.wanted(
                    request.method, request.headers.get("Content-Type")
                )
                reader = _Body(request.content, limit, self.body_pause, scanner)
                if request.content_length is not None:
                    headers["Content-Length"] = str(request.content_length)
                # Relayed chunk by chunk, each wait bounded by limits.body_read_timeout, so a
                # trickled body cannot hold an upstream connection for the whole request.
                body = reader.chunks()
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
                    ssl=ssl_context if ssl_context is not None else True,
                    server_hostname=server_name,
                )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            if reader is not None:
                reader.raise_if_failed()
            raise UpstreamTimeout(reason="upstream_timeout") from exc
        except (aiohttp.ClientError, PayloadTooLarge, BodyTimeout, BadRequest) as exc:
            if reader is not None:
                reader.raise_if_failed()
            raise _unavailable(name, base_url, exc) from exc
        finally:
            timing["upstream"] = time.perf_counter() - started
        if reader is not None and (reader.exceeded or reader.stalled or reader.overridden):
            # The upstream answered before reading the whole body; still refuse the client.
            resp.close()
            reader.raise_if_failed()
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
        """A bodiless request over the pooled exchange of :mod:`gateway.forward.upstream`."""
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
            raise _unavailable(name, pool.base, exc) from exc
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


async def answer_expect(request: web.Request) -> None:
    """Answer ``Expect``: ``100 Continue`` on HTTP/1.1, 417 for any other expectation."""
    if request.headers.get("Expect", "").strip().lower() != "100-continue":
        raise ExpectationFailed(reason="expect_unknown")
    if request.version == HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response proper has not started


class _Body:
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


@functools.lru_cache(maxsize=4096)  # bounded: token scopes are arbitrary subsets
def _scope_list(scopes: frozenset[str]) -> str:
    """The scopes header value, sorted; remembered per set (few distinct sets, asked per request)."""
    return " ".join(sorted(scopes))


def _connection_listed(headers: CIMultiDictProxy[str]) -> frozenset[str] | None:
    """Names the ``Connection`` header lists beyond the hop-by-hop ones (``None``: none)."""
    listed = headers.getall("Connection", ())
    if not listed:
        return None
    extra = frozenset(t.strip().lower() for value in listed for t in value.split(","))
    return None if extra <= HOP_BY_HOP else extra


def _drop_set(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    """Hop-by-hop names plus any the ``Connection`` header lists (copied only when it lists some)."""
    extra = _connection_listed(headers)
    return HOP_BY_HOP if extra is None else HOP_BY_HOP | extra


def _unavailable(name: str, base: str, exc: BaseException) -> UpstreamUnavailable:
    """The 502 for a failed exchange; a TLS failure also gets a log line saying what was wrong."""
    reason = _reason(exc)
    if reason == "upstream_tls":
        cert_error = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", exc)
        problem = getattr(cert_error, "verify_message", None) or getattr(cert_error, "reason", None)
        log.warning("upstream %s (%s): TLS handshake failed: %s", name, base, problem or cert_error)
    return UpstreamUnavailable(reason=reason)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientSSLError):
        return "upstream_tls"  # before ClientConnectorError, its base: not a closed port
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "upstream_refused"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "upstream_disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "upstream_payload"
    if isinstance(exc, aiohttp.ClientOSError):
        return "upstream_reset"
    return "upstream_error"

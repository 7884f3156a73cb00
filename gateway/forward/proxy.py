"""The forwarder: streams an authorized request upstream and the response back.

:class:`Forwarder` owns the exchange: the upstream's connection cap (503 ``UPSTREAM_BUSY``), the
choice among several targets, the pooled fast path for bodiless requests and the ClientSession for
the rest, and the upstream's timeouts. Its parts live beside it: the request headers in
:mod:`gateway.forward.headers` (its base class), the request body and ``Expect`` in
:mod:`gateway.forward.body`, the response relay in :mod:`gateway.forward.relay`, failure reasons in
:mod:`gateway.forward.failures`; the shared upstream client is made in :mod:`gateway.forward.client`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict
from yarl import URL

from gateway.config import Config, Route
from gateway.core.errors import (
    BadRequest,
    BodyTimeout,
    PayloadTooLarge,
    UpstreamBusy,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.core.identity import Identity
from gateway.edge.tls import upstream_context
from gateway.forward.balancer import Balancers, TargetSet
from gateway.forward.body import (
    FORM_BODY,
    FORM_MAX,
    BodyReader,
    strip_form_method,
    strip_method_param,
)
from gateway.forward.failures import unavailable
from gateway.forward.headers import UpstreamHeaders
from gateway.forward.relay import relay
from gateway.forward.upstream import IDEMPOTENT, UpstreamPool, UpstreamPools
from gateway.pipeline.override import BodyOverrideScanner

if TYPE_CHECKING:  # types only: the hook points live with the pipeline
    from gateway.pipeline.hooks import HeaderHook

__all__ = ["Forwarder"]

log = logging.getLogger("gateway.proxy")


class Forwarder(UpstreamHeaders):
    """Sends one authorized request to its upstream and relays the answer (one per worker)."""

    def __init__(
        self,
        config: Config,
        client: aiohttp.ClientSession,
        pools: UpstreamPools,
        credential_headers: Iterable[str],
        balancers: Balancers | None = None,
        header_hooks: Sequence[HeaderHook] = (),
    ) -> None:
        super().__init__(config, credential_headers, header_hooks)
        self.client = client
        self.balancers = balancers  # upstreams with several targets (issue 22)
        # Bodiless requests to http(s) upstreams; the client session serves the rest.
        self.pools = pools
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
        reader = BodyReader(request.content, cap, self.body_pause)
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
        reader: BodyReader | None = None
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
                reader = BodyReader(request.content, limit, self.body_pause, scanner)
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
                resp = await self.client.request(
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
            raise unavailable(name, base_url, exc) from exc
        finally:
            timing["upstream"] = time.perf_counter() - started
        if reader is not None and (reader.exceeded or reader.stalled or reader.overridden):
            # The upstream answered before reading the whole body; still refuse the client.
            resp.close()
            reader.raise_if_failed()
        try:
            return await relay(request, resp.status, resp.reason, resp.headers, resp.content)
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
            raise unavailable(name, pool.base, exc) from exc
        except HttpProcessingError as exc:  # an unparseable response head
            raise UpstreamUnavailable(reason="upstream_error") from exc
        finally:
            timing["upstream"] = time.perf_counter() - started
        try:
            return await relay(request, message.code, message.reason, message.headers, payload)
        finally:
            # Reused only when the body was read to its end; otherwise closed.
            pool.release(proto)
            timing["upstream"] = time.perf_counter() - started

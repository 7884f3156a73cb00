"""Allowed domains: keys that only work from the browser origins they were created for.

A token with ``allowed_domains`` is accepted only when the request's ``Origin`` (or, without one,
``Referer``) host matches one of them: ``example.com`` matches that host exactly, ``*.example.com``
any subdomain, ``example.com:8443`` that host and port, and ``localhost`` any local origin
(``localhost``, ``127.0.0.1``, ``[::1]``) on any port. Anything else is 403 ``ORIGIN_NOT_ALLOWED``,
and a key with allowed domains sent with no origin at all is refused too (it would otherwise work
from any script). A key whose type sets ``require_allowed_domains`` (public browser keys, e.g.
Velt's) and that has no allowed domain works from no origin at all: ``Origin`` is forged by any
non-browser client, so "any origin" would mean "anyone". Allowed requests get
``Access-Control-Allow-Origin`` for that origin.

CORS preflights carry no credential, so they are answered before authentication: an origin that
is an allowed domain of some unrevoked key gets a 204 with the CORS headers for the route and
method asked about; any other origin gets 403. The real request is then checked in full.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from gateway.core.context import RequestContext
from gateway.core.errors import OriginDenied

if TYPE_CHECKING:
    from gateway.app import Gateway, Runtime

__all__ = ["domain_allows", "install", "request_origin"]

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
PREFLIGHT_CACHE_SECONDS = 2.0
PREFLIGHT_MAX_AGE = "600"


def request_origin(request: web.Request) -> tuple[str, str, int | None] | None:
    """``(origin, host, port)`` from Origin, else Referer; ``None`` when neither names a host."""
    raw = request.headers.get("Origin") or request.headers.get("Referer")
    if not raw or raw == "null":
        return None
    try:
        parts = urlsplit(raw)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    return f"{parts.scheme}://{parts.netloc}", host.lower(), port


def domain_allows(domain: str, host: str, port: int | None) -> bool:
    domain = domain.lower()
    if domain == "localhost":
        return host in LOCAL_HOSTS
    name, _, want_port = domain.partition(":")
    if want_port and (port is None or str(port) != want_port):
        return False
    if name.startswith("*."):
        return host.endswith(name[1:]) and host != name[2:]
    return host == name


async def check_origin(request: web.Request, ctx: RequestContext) -> None:
    token = ctx.principal.token if ctx.principal else None
    if token is None:
        return
    tt = ctx.principal.token_type if ctx.principal else None
    if not token.allowed_domains:
        if tt is not None and tt.require_allowed_domains:
            raise OriginDenied(
                "This browser key has no allowed domain, so it works from no origin.",
                reason="origin_no_domains",
            )
        return
    found = request_origin(request)
    if found is None:
        raise OriginDenied(
            "This key only works from its allowed domains; the request names no origin.",
            reason="origin_missing",
        )
    origin, host, port = found
    if not any(domain_allows(d, host, port) for d in token.allowed_domains):
        raise OriginDenied(f"This key is not allowed from {host}.", reason="origin_denied")
    ctx.response_headers["Access-Control-Allow-Origin"] = origin
    ctx.response_headers["Vary"] = "Origin"


class _Preflight:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._domains: frozenset[str] = frozenset()
        self._fetched = 0.0

    async def domains(self) -> frozenset[str]:
        # A stale answer only lets a browser *send* a request that is still checked in full.
        if time.monotonic() - self._fetched > PREFLIGHT_CACHE_SECONDS:
            self._domains = await self.gw.health.call(
                self.gw.store.allowed_domains_in_use, "allowed-domains lookup"
            )
            self._fetched = time.monotonic()
        return self._domains

    async def __call__(
        self, request: web.Request, rt: Runtime, segments: tuple[str, ...]
    ) -> web.StreamResponse:
        wanted = request.headers["Access-Control-Request-Method"].strip().upper()
        rt.router.match(wanted, segments)  # 404/405 for a path or method no route serves
        found = request_origin(request)
        if found is None or not any(
            domain_allows(d, found[1], found[2]) for d in await self.domains()
        ):
            raise OriginDenied("This origin is not allowed.", reason="preflight_denied")
        origin = found[0]
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": wanted,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        }
        asked = request.headers.get("Access-Control-Request-Headers")
        if asked:
            headers["Access-Control-Allow-Headers"] = asked
        return web.Response(status=204, headers=headers)


def install(gw: Gateway) -> None:
    gw.hooks.checks += (check_origin,)
    gw.hooks.preflight = _Preflight(gw)

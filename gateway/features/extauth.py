"""External authorization: the pipeline's decision, for a proxy that moves the bytes itself.

nginx ``auth_request``, Envoy ``ext_authz`` (HTTP service), Traefik ``forwardAuth`` and Caddy
``forward_auth`` ask a service "may this request pass?" before they forward it. This module answers
under ``external_auth.path`` (on its own listener or the proxy's), with :func:`~gateway.pipeline.run.decide`
— the same function proxy mode runs, so tokens, routes, scopes, workspaces, rate limits, errors,
metrics and the access log are the same — and never forwards anything. One sub-path per convention
says where the original request is read from, so a header one proxy passes through untouched can
never be taken for what another proxy set:

* ``{path}/nginx``: ``X-Original-Method`` + ``X-Original-URI`` (``$request_method``,
  ``$request_uri``); the ``Host`` header is the original host (``proxy_set_header Host $host``);
* ``{path}/forwarded`` (Traefik, Caddy): ``X-Forwarded-Method``, ``X-Forwarded-Uri``,
  ``X-Forwarded-Host`` (the original host);
* ``{path}/envoy/<original path>`` (Envoy's ``path_prefix``): the request's own method and the rest
  of its path; ``X-Forwarded-Host`` (when set) is the original host.

Only peers in ``trusted_proxies`` are answered; anyone else gets 403 ``UNTRUSTED_PROXY`` saying why.
Allowed: 200, empty body, the identity headers the forwarder would send upstream (built by the
forwarder itself), ``X-Request-Id``, and ``X-Gateway-Strip-Headers`` (also as Envoy's
``x-envoy-auth-headers-to-remove``) naming the client's credential and spoofed identity headers the
proxy must remove. Refused: the same status, JSON body and headers as proxy mode, plus the body in
``X-Gateway-Error`` for proxies that keep only an answer's headers (nginx). An allowed answer may be
cached for ``external_auth.cache_seconds`` (``Cache-Control: private, max-age``, nginx's
``X-Accel-Expires``) unless a check made it specific to this request (rate-limit or CORS headers);
a refusal never (``no-store``, ``X-Accel-Expires: 0``).
"""

from __future__ import annotations

import functools
import ipaddress
import json

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict
from yarl import URL

from gateway.app import Gateway
from gateway.config import Route
from gateway.core.context import RequestContext
from gateway.core.errors import BadRequest, GatewayError, RouteNotFound, UntrustedProxy
from gateway.edge import catchall
from gateway.edge.apps import create_bare_app
from gateway.edge.headerpolicy import KEEP, METHOD_OVERRIDE, NAMESPACE, header_key, is_trusted_peer
from gateway.edge.responses import error_body
from gateway.edge.wrap import edge
from gateway.forward.body import strip_method_param
from gateway.forward.proxy import Forwarder
from gateway.pipeline.run import decide, upstream_base

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
__all__ = [
    "STRIP_HEADER",
    "answer",
    "create_authz_app",
    "install_proxy",
    "original_request",
    "unstrippable",
]

STRIP_HEADER = "X-Gateway-Strip-Headers"
ENVOY_STRIP_HEADER = "X-Envoy-Auth-Headers-To-Remove"
ERROR_HEADER = "X-Gateway-Error"
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


def _one(request: web.Request, name: str) -> str:
    values = request.headers.getall(name, ())
    if len(values) != 1 or not values[0]:
        raise BadRequest(
            f"The decision request must carry exactly one {name} header.",
            reason="authz_original_missing",
        )
    return values[0]


@functools.lru_cache(maxsize=1024)  # a handful of proxy addresses, asked on every decision
def _trusted(peer: str | None, nets: tuple[IPNetwork, ...]) -> bool:
    return is_trusted_peer(peer, nets)


def original_request(gw: Gateway, request: web.Request, prefix: str) -> web.Request:
    """The request the proxy is asking about, rebuilt from its convention (see the module doc)."""
    trusted = gw.runtime.config.trusted_proxies
    if not trusted:
        raise UntrustedProxy(
            "Decision requests are refused: trusted_proxies is empty in the gateway config.",
            reason="no_trusted_proxies",
        )
    if not _trusted(request.remote, trusted):
        raise UntrustedProxy(
            f"Decision requests are accepted only from trusted_proxies; {request.remote} is not "
            "one of them, so its X-Original-*/X-Forwarded-* headers are not believed.",
            reason="untrusted_peer",
        )
    raw = request.raw_path
    # Some proxies keep the original query on the decision request (Caddy's rewrite does); the
    # original URI comes from its header all the same.
    where = raw.partition("?")[0]
    host: str | None = None
    if where == prefix + "/nginx":
        method, target = _one(request, "X-Original-Method"), _one(request, "X-Original-URI")
    elif where == prefix + "/forwarded":
        method, target = _one(request, "X-Forwarded-Method"), _one(request, "X-Forwarded-Uri")
        host = _one(request, "X-Forwarded-Host")
    elif raw.startswith(prefix + "/envoy/"):
        method, target = request.method, raw[len(prefix) + len("/envoy") :]
        forwarded = request.headers.getall("X-Forwarded-Host", ())
        if forwarded:
            host = _one(request, "X-Forwarded-Host")
    else:
        raise RouteNotFound(
            f"Use {prefix}/nginx, {prefix}/forwarded or {prefix}/envoy/<path>.",
            reason="authz_unknown_convention",
        )
    if not set(method) <= _TOKEN_CHARS:
        raise BadRequest("The original method is not an HTTP method.", reason="authz_bad_method")
    headers: CIMultiDict[str] | None = None
    if host is not None and host != request.headers.get("Host"):
        # The original host is what workspaces and allowed domains are decided on. (The
        # convention headers themselves stay: no step reads them.)
        headers = CIMultiDict(request.headers)
        headers["Host"] = host
    # The method as sent (not upper-cased): proxy mode would not match "get" to a GET route either.
    try:
        if headers is None:
            return request.clone(method=method, rel_url=URL(target, encoded=True))
        return request.clone(method=method, rel_url=URL(target, encoded=True), headers=headers)
    except (ValueError, UnicodeError):
        raise BadRequest(
            "The original request cannot be represented.", reason="authz_unrepresentable"
        ) from None


async def answer(gw: Gateway, original: web.Request) -> web.StreamResponse:
    """Decide ``original`` as proxy mode would; 200 with identity headers, or raise the refusal."""
    rt = gw.runtime
    ctx = RequestContext.of(original)
    try:
        decision = await decide(gw, rt, original)
        route = decision.route
        if route.handler is not None:
            # Built-in endpoints (self-service tokens, OAuth, Velt keys) are the gateway's own:
            # an upstream behind the proxy does not serve them.
            raise RouteNotFound(
                "This endpoint is served by the gateway itself; route it to the gateway's proxy "
                "listener rather than through external authorization.",
                reason="authz_builtin_route",
            )
        upstream_base(rt, route, ctx.identity)  # ENVIRONMENT_UNAVAILABLE exactly as proxy mode
        unstrippable(rt.forwarder, original, route)
    except GatewayError as err:
        _refusal_headers(gw, ctx, err)
        raise
    headers: CIMultiDict[str] = CIMultiDict()
    if ctx.identity is not None:
        rt.forwarder.add_identity(headers, ctx.identity)
    # Identity headers the answer sets replace the client's own; the rest must be removed.
    strip = [n for n in rt.forwarder.stripped(original.headers, route) if n not in headers]
    if strip:
        headers[STRIP_HEADER] = headers[ENVOY_STRIP_HEADER] = ", ".join(strip)
    seconds = rt.config.external_auth.cache_seconds if rt.config.external_auth else 0
    # X-Accel-Expires before Cache-Control: nginx before 1.23 honours whichever comes first, and
    # "private" (which keeps any shared HTTP cache from reusing one caller's answer for another,
    # all answers having the same URL) would otherwise forbid nginx's keyed decision cache.
    if seconds and not ctx.response_headers:
        # Rate-limit and CORS headers mean the answer depended on more than the cache key
        # (credential, workspace, host, method, URI): such answers are never reused.
        headers["X-Accel-Expires"] = str(seconds)
        headers["Cache-Control"] = f"private, max-age={seconds}"
    else:
        headers["X-Accel-Expires"] = "0"
        headers["Cache-Control"] = "no-store"
    return web.Response(status=200, headers=headers)


def unstrippable(forwarder: Forwarder, original: web.Request, route: Route) -> None:
    """400 for what proxy mode would remove from the request but no proxy can remove for it.

    Proxy mode strips ``_method`` from the query and from form bodies, and every header of the
    gateway's namespace; a proxy deciding through the gateway forwards the URI and body as they
    came, and nginx can strip headers only by fixed names. So: ``_method`` in the query of a
    route that does not honour overrides (the upstream would perform another method than the
    one authorized), a form body on a route that does (the decision never sees the body, so
    cannot authorize the method its ``_method`` names), an ``X-Gateway-*`` header that is not
    one of the identity headers the shipped configs overwrite, a ``_`` spelling of any header
    proxy mode withholds (nginx drops those, Caddy, Traefik and Envoy pass them on), and a
    method-override header where the route honours none (where it does, the override was
    decided, and the proxy passes it on for the upstream to perform).
    """
    query = original.raw_path.partition("?")[2]
    if query and not route.method_override and strip_method_param(query) != query:
        raise BadRequest(
            "A _method override in the query is not accepted on this path through external "
            "authorization: the proxy forwards the query as sent.",
            reason="authz_override_in_query",
        )
    if route.method_override and forwarder.is_form(original):
        raise BadRequest(
            "A form body on a path that honours method overrides cannot be decided through "
            "external authorization: the decision never sees the body's _method.",
            reason="authz_override_form",
        )
    policy = forwarder.policy
    for name in original.headers:
        key = name.lower()
        norm = header_key(key)
        # A `_` spelling is refused even for an identity header: proxies overwrite the `-` one.
        if norm.startswith(NAMESPACE) and (norm != key or key not in policy.identity_keys):
            raise BadRequest(
                f"The {name} header is the gateway's own, and the proxy cannot be trusted to "
                "remove it before the upstream reads it.",
                reason="authz_namespace_header",
            )
        verdict = policy.verdict(key)
        if norm != key and verdict != KEEP:
            # WSGI/CGI upstreams read it as the `-` header proxy mode withholds or rebuilds.
            raise BadRequest(
                f"The {name} header spells a header the gateway owns; send it with '-'.",
                reason="authz_underscore_twin",
            )
        if verdict == METHOD_OVERRIDE and not route.method_override:
            # Passed on by the proxy, the upstream would perform a method never authorized.
            raise BadRequest(
                f"This path does not accept a method override ({name}).",
                reason="authz_override_header",
            )


def _refusal_headers(gw: Gateway, ctx: RequestContext, err: GatewayError) -> None:
    """The edge renders status, body, WWW-Authenticate and Retry-After as in proxy mode; these
    ride along for proxies that keep only the answer's headers (nginx), and forbid caching."""
    body = error_body(err, ctx.request_id, gw.runtime.config.envelope)
    ctx.response_headers[ERROR_HEADER] = json.dumps(body, separators=(",", ":"))
    ctx.response_headers["X-Accel-Expires"] = "0"


def handler(gw: Gateway, prefix: str) -> Handler:
    """The aiohttp handler for everything under ``prefix``: edge (errors, access log, metrics)
    around :func:`answer`, seen as the original request once it has been rebuilt."""

    async def decide_request(request: web.Request) -> web.StreamResponse:
        ctx = RequestContext.of(request)  # on the outer request first: the clone shares it
        try:
            original = original_request(gw, request, prefix)
        except GatewayError as err:
            _refusal_headers(gw, ctx, err)
            refusal = err
        else:
            return await edge(gw, original, lambda r: answer(gw, r))

        async def refuse(_request: web.Request) -> web.StreamResponse:
            raise refusal

        return await edge(gw, request, refuse)

    return decide_request


def install_proxy(app: web.Application, gw: Gateway) -> None:
    """The decision endpoint under ``external_auth.path`` on the proxy listener (no own listener)."""
    ea = gw.config.external_auth
    if ea is None or ea.listener is not None:
        return
    _add(app, gw, ea.path)


def _add(app: web.Application, gw: Gateway, prefix: str) -> None:
    h = handler(gw, prefix)
    app.router.add_route("*", prefix + "/nginx", h)
    app.router.add_route("*", prefix + "/forwarded", h)
    app.router.add_route("*", prefix + "/envoy/{tail:.*}", h)


def create_authz_app(gw: Gateway) -> web.Application | None:
    """The decision endpoint's own app, when ``external_auth.listener`` is set (every worker
    serves it, like the proxy listener: it is the hot path of a deployment behind nginx)."""
    ea = gw.config.external_auth
    if ea is None or ea.listener is None:
        return None
    app = create_bare_app(gw)
    # Every target goes to the one handler, which sorts them by their raw path (unknown ones get
    # a JSON 404 in the edge): no URL dispatching per decision.
    catchall.install(app, handler(gw, ea.path))
    return app

"""The method-override step: on a route with ``method_override``, which method is really asked.

``X-HTTP-Method-Override``, ``X-HTTP-Method``, ``X-Method-Override`` and ``_method`` (in the query
or an urlencoded form body) make frameworks such as Rails, Laravel and Express run another method
than the request line's. Everywhere else the forwarder strips them, so they cannot change what the
upstream does behind the gateway's back. A route that opts in keeps them, and then the route (and
so the scopes) is chosen for the overridden method: ``POST`` + ``_method=DELETE`` needs what
``DELETE`` needs. The overridden method's route must opt in as well, or the request is refused.
On such a route an urlencoded form body is read (at most 1 MiB, each wait bounded by
``limits.body_read_timeout``) before authentication, since the ``_method`` in it decides the route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from aiohttp import web

from gateway.config import HTTP_METHODS
from gateway.errors import BadRequest
from gateway.headerpolicy import METHOD_OVERRIDE_HEADERS, is_method_param
from gateway.pipeline.routing import Match, Router

if TYPE_CHECKING:
    from gateway.proxy import Forwarder

__all__ = ["overridden", "requested_method"]

PARAM = "_method"


def requested_method(request: web.Request, form: bytes | None) -> str | None:
    """The one override the request asks for (upper-cased), ``None`` if none; 400 if they differ."""
    values: list[str] = []
    for name in METHOD_OVERRIDE_HEADERS:
        values.extend(request.headers.getall(name, ()))
    if request.query_string:
        values.extend(v for k, v in request.query.items() if is_method_param(k))
    if form:
        values.extend(v for k, v in parse_qsl(form.decode("latin-1")) if is_method_param(k))
    methods = {v.strip().upper() for v in values if v.strip()}
    if not methods:
        return None
    if len(methods) > 1:
        raise BadRequest(
            "The request asks for conflicting method overrides.", reason="override_conflict"
        )
    method = methods.pop()
    if method not in HTTP_METHODS:
        raise BadRequest("The method override names no HTTP method.", reason="override_unknown")
    return method


async def overridden(
    request: web.Request,
    match: Match,
    router: Router,
    forwarder: Forwarder,
    segments: tuple[str, ...],
) -> Match:
    """``match`` redone for the overridden method (``match`` itself when there is no override)."""
    form = await forwarder.form_body(request) if forwarder.is_form(request) else None
    method = requested_method(request, form)
    if method is None or method == request.method:
        return match
    alt = router.match(method, segments)  # 404/405 as for a request line with that method
    if not alt.route.method_override:
        raise BadRequest(
            f"This path does not accept {method} as a method override.", reason="override_refused"
        )
    return alt

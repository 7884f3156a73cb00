"""The method-override step: on a route with ``method_override``, which method is really asked.

``X-HTTP-Method-Override``, ``X-HTTP-Method``, ``X-Method-Override`` and ``_method`` (in the query
or an urlencoded form body) make frameworks such as Rails, Laravel and Express run another method
than the request line's. Everywhere else the forwarder strips them, so they cannot change what the
upstream does behind the gateway's back. A route that opts in keeps them, and then the route (and
so the scopes) is chosen for the overridden method: ``POST`` + ``_method=DELETE`` needs what
``DELETE`` needs. The overridden method's route must opt in as well, or the request is refused.
On such a route an urlencoded form body is read (at most 1 MiB, each wait bounded by
``limits.body_read_timeout``) before authentication, since the ``_method`` in it decides the route.

Bodies that are streamed, not read, can carry one too: Rack (Rails) and PHP (Laravel, Symfony)
also take ``_method`` from a ``multipart/form-data`` part, Rack parses a ``POST`` with no
``Content-Type`` as a form, and Laravel reads it from a JSON body's keys. :class:`BodyOverrideScanner` watches such bodies as they stream and the
forwarder abandons the upstream request (400) at the first ``_method`` field, on every route:
the gateway can neither strip nor authorize it there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, unquote_plus

from aiohttp import web

from gateway.config import HTTP_METHODS
from gateway.core.errors import BadRequest
from gateway.edge.headerpolicy import METHOD_OVERRIDE_HEADERS, is_method_param
from gateway.pipeline.routing import Match, Router

if TYPE_CHECKING:
    from gateway.forward.proxy import Forwarder

__all__ = ["BodyOverrideScanner", "overridden", "requested_method"]

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


# A multipart part's field name: `name="…"` (quoted, `\` escapes), `name=…`, or RFC 2231 `name*=`.
# `[^:]` like Rack's own pattern: a part header folded onto a second line still names the field.
_PART_NAME = re.compile(
    rb"(?i)content-disposition:[^:]{0,512}?;\s*name(\*?)\s*=\s*"
    rb'(?:"((?:[^"\\\r\n]|\\.){0,256})"|([^;\s]{0,256}))'
)
# An urlencoded field name (Rack reads a POST with no Content-Type as a form).
_FORM_NAME = re.compile(rb"&([^=&]{0,256})=")
# A JSON object key (Laravel reads `_method` from a JSON body: its input bag is the JSON).
_JSON_KEY = re.compile(rb'"((?:[^"\\]|\\.){0,256})"\s*:')
_TAIL = 1024  # bytes kept across chunks, so a name split between two chunks is still seen


class BodyOverrideScanner:
    """Watches a streamed ``POST`` body that a framework reads parameters from for a field named
    ``_method`` (as :func:`~gateway.edge.headerpolicy.is_method_param` reads names): multipart parts
    (Rack, PHP), untyped bodies (Rack parses them as forms) and JSON keys (Laravel)."""

    __slots__ = ("kind", "tail")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "multipart", "form" or "json"
        self.tail = b"&" if kind == "form" else b""  # a form's first field follows a virtual `&`

    @staticmethod
    def wanted(method: str, content_type: str | None) -> BodyOverrideScanner | None:
        """A scanner for a request whose body Rack, PHP or Laravel would read ``_method`` from."""
        if method != "POST":  # Rack, Symfony and Express honour `_method` on POST only
            return None
        if content_type is None or not content_type.strip():  # Rack reads empty as absent
            return BodyOverrideScanner("form")
        ctype = content_type.lower().lstrip()
        if ctype.startswith("multipart/"):
            return BodyOverrideScanner("multipart")
        if "/json" in ctype or "+json" in ctype:  # what Laravel's isJson() accepts
            return BodyOverrideScanner("json")
        return None

    def finds_override(self, chunk: bytes) -> bool:
        """Whether ``chunk`` (with the end of the previous one) holds a ``_method`` field."""
        window = self.tail + chunk
        self.tail = window[-_TAIL:]
        if b"method" not in window and b"%" not in window and b"\\" not in window:
            return False
        return any(is_method_param(name) for name in self._names(window))

    def _names(self, window: bytes) -> Iterator[str]:
        if self.kind == "multipart":
            for m in _PART_NAME.finditer(window):
                raw = (m.group(2) or m.group(3) or b"").decode("latin-1")
                if m.group(1):  # name*=charset'lang'percent-encoded
                    raw = unquote(raw.rpartition("'")[2])
                yield re.sub(r"\\(.)", r"\1", raw)
        elif self.kind == "form":
            for m in _FORM_NAME.finditer(window):
                yield unquote_plus(m.group(1).decode("latin-1"))
        else:
            for m in _JSON_KEY.finditer(window):
                try:
                    yield json.loads(b'"' + m.group(1) + b'"')
                except ValueError:
                    continue

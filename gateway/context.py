"""Per-request state shared by the pipeline, built-in handlers, the access log and metrics."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.config import Route
    from gateway.identity import Identity, Principal

__all__ = ["CTX", "RequestContext", "request_id_for"]

CTX: web.RequestKey[RequestContext]  # assigned below the class it names
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_for(request: web.Request) -> str:
    """The client's ``X-Request-Id`` when well-formed and single, a fresh one otherwise."""
    values = request.headers.getall("X-Request-Id", ())
    if len(values) == 1 and _REQUEST_ID.match(values[0]):
        return values[0]
    return secrets.token_hex(12)


@dataclass(slots=True)
class RequestContext:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    route: Route | None = None
    params: dict[str, str] = field(default_factory=dict)
    principal: Principal | None = None
    identity: Identity | None = None
    decision: str = "allowed"
    reason: str | None = None
    timing: dict[str, float] = field(default_factory=dict)
    # Extra headers for the response, whoever produces it (CORS headers, rate-limit headers, …).
    response_headers: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def of(request: web.Request) -> RequestContext:
        ctx = request.get(CTX)
        if ctx is None:
            ctx = RequestContext(request_id_for(request))
            request[CTX] = ctx
        return ctx


CTX = web.RequestKey("gateway.ctx", RequestContext)

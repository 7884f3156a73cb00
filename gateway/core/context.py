"""Per-request state shared by the pipeline, built-in handlers, the access log and metrics."""

from __future__ import annotations

import itertools
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.config import Route
    from gateway.core.identity import Identity, Principal

__all__ = ["CTX", "RequestContext", "request_id_for"]

CTX: web.RequestKey[RequestContext]  # assigned below the class it names
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class _Ids:
    """Fresh request ids: a random per-process prefix and a counter (24 hex characters).

    Unique, not secret, so no randomness is drawn per request; a forked child re-draws its prefix.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = secrets.token_hex(6)
        self.counter = itertools.count(secrets.randbelow(1 << 32))

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFFFFFF:012x}"


_IDS = _Ids()


def request_id_for(request: web.Request) -> str:
    """The client's ``X-Request-Id`` when well-formed and single, a fresh one otherwise."""
    values = request.headers.getall("X-Request-Id", ())
    if len(values) == 1 and _REQUEST_ID.match(values[0]):
        return values[0]
    return _IDS.next()


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
    # The identity headers when the cache-hit memo had them (gateway/pipeline/memo.py).
    identity_headers: tuple[tuple[str, str], ...] | None = None
    # ... and the access line's fields naming the caller (gateway.core.identity.log_fields).
    log_fields: str | None = None
    # The W3C trace id (32 hex) when tracing is on (gateway/features/tracing.py); in the access line.
    trace_id: str | None = None

    @staticmethod
    def of(request: web.Request) -> RequestContext:
        try:
            return request[CTX]  # not .get(): Mapping.get adds a Python frame, several per request
        except KeyError:
            ctx = request[CTX] = RequestContext(request_id_for(request))
            return ctx


CTX = web.RequestKey("gateway.ctx", RequestContext)

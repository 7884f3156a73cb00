"""The access-log line: one compact JSON object per request on ``gateway.access``, written directly.

:func:`log_access` is the request-path observer the gateway installs first (see
:class:`gateway.app.Gateway`); :func:`access_line` is the encoder, kept apart so tests can check the
line's shape without a logger.
"""

from __future__ import annotations

import logging
import time
from json.encoder import encode_basestring_ascii as _json_str
from typing import TYPE_CHECKING, Any

from gateway.core.identity import json_text, log_fields
from gateway.edge.logbuffer import direct_sink

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.core.context import RequestContext

__all__ = ["access_line", "log_access"]

access_log = logging.getLogger("gateway.access")

_stamp: list[Any] = [0, ""]  # (second, its ISO text): one strftime per second, not per request


def _now_iso() -> str:
    now = int(time.time())
    if _stamp[0] != now:
        _stamp[0], _stamp[1] = now, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return str(_stamp[1])


def access_line(
    request: web.Request, response: web.StreamResponse | None, ctx: RequestContext
) -> str:
    """The access-log line: the compact JSON object ``json`` would write for these fields, written
    directly (a third of the cost of building a dict and encoding it, on every request)."""
    upstream = ctx.timing.get("upstream")
    upstream_ms = "null" if upstream is None else repr(round(upstream * 1000, 3))
    who = ctx.log_fields
    if who is None:
        who = log_fields(ctx.principal, ctx.identity)
    # The trace the request belongs to when tracing is on (32 hex digits), so logs and traces join.
    trace = f',"trace_id":"{ctx.trace_id}"' if ctx.trace_id else ""
    return (
        f'{{"time":{_json_str(_now_iso())},"request_id":{_json_str(ctx.request_id)},'
        f'"method":{_json_str(request.method)},"route":{json_text(ctx.route.name if ctx.route else None)},'
        f'"status":{response.status if response is not None else 0:d},'
        f'"duration_ms":{round((time.perf_counter() - ctx.started) * 1000, 3)!r},'
        f'"upstream_ms":{upstream_ms},"decision":{_json_str(ctx.decision)},'
        f'"reason":{json_text(ctx.reason)},{who}{trace}}}'
    )


def log_access(
    request: web.Request, response: web.StreamResponse | None, ctx: RequestContext
) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    line = access_line(request, response, ctx)
    sink = direct_sink(access_log)
    if sink is not None:
        sink.write(line)  # what access_log.info(line) would end in, minus the record machinery
    else:
        access_log.info(line)

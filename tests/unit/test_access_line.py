"""The access-log line is written by hand for speed: it must be exactly what ``json`` would write."""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.config import Route
from gateway.core.context import RequestContext
from gateway.core.identity import Identity, Principal
from gateway.edge.accesslog import access_line
from gateway.edge.logbuffer import BufferedLineHandler, buffer_access_log, direct_sink
from gateway.store.base import TokenRecord, Workspace


def _expected(line: str, fields: dict[str, object]) -> None:
    assert line == json.dumps(fields, separators=(",", ":"))


def test_refused_request_without_route_or_principal() -> None:
    request = make_mocked_request("DELETE", "/x")
    ctx = RequestContext("rid-1")
    ctx.decision, ctx.reason = "NOT_FOUND", None
    line = access_line(request, None, ctx)
    fields = json.loads(line)
    assert fields["status"] == 0 and fields["route"] is None and fields["upstream_ms"] is None
    _expected(line, fields)


def test_allowed_request_with_identity_and_awkward_strings() -> None:
    request = make_mocked_request("GET", "/api/x")
    token = TokenRecord(
        id='tok_"q"\\',
        name="n",
        kind="api_key",
        type_prefix="gw_live_",
        environment="live",
        visible_prefix="gw_live_abcdefgh",
        scopes=frozenset(),
        workspace_id="ws_é",
        user_id="usr_\u2028\x01",
        created_at=0.0,
    )
    principal = Principal(auth_method="token", token=token, user_id=token.user_id)
    ctx = RequestContext("rid-2")
    ctx.route = Route(name='rüte/"x"', path="/api/**")
    ctx.principal = principal
    ctx.identity = Identity(principal, Workspace("ws_é", "acme", "Acme", "free", 0.0), frozenset())
    ctx.reason = "why\n"
    ctx.timing["upstream"] = 0.0123456
    line = access_line(request, web.Response(status=201), ctx)
    fields = json.loads(line)
    assert fields["route"] == 'rüte/"x"' and fields["user"] == "usr_\u2028\x01"
    assert fields["upstream_ms"] == 12.346 and fields["status"] == 201
    _expected(line, fields)


def test_direct_sink_only_when_the_buffer_is_the_sole_destination() -> None:
    logger = logging.getLogger("gateway.test-direct-sink")
    try:
        assert direct_sink(logger) is None
        handler = buffer_access_log(logger.name)
        assert direct_sink(logger) is handler and isinstance(handler, BufferedLineHandler)
        logger.propagate = True  # e.g. someone wants the root handlers to see the lines too
        assert direct_sink(logger) is None
        logger.propagate = False
        logger.addFilter(lambda record: True)
        assert direct_sink(logger) is None
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.filters.clear()


def test_the_trace_id_joins_the_line_only_when_tracing_set_one() -> None:
    request = make_mocked_request("GET", "/x")
    ctx = RequestContext("rid-3")
    assert "trace_id" not in json.loads(access_line(request, None, ctx))
    ctx.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    line = access_line(request, None, ctx)
    fields = json.loads(line)
    assert fields["trace_id"] == ctx.trace_id
    _expected(line, fields)

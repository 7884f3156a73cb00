"""OpenTelemetry traces: a span per request, a child span per upstream exchange, W3C context in/out.

Off unless the config has a ``tracing:`` section, and then free: :func:`install` returns before
importing anything, so no observer, no header hook and no OpenTelemetry module exist in the
process. When on:

* the client's ``traceparent``/``tracestate`` are read and continued (a malformed or absent one
  starts a new trace); sampling is parent-based, with ``tracing.sampling_ratio`` for new traces;
* one SERVER span per request, refusals included (liveness/readiness probes excepted), named
  ``METHOD route-path`` and carrying the route, decision, reason id, status, workspace id, token
  id and user id — never a token, a path or a query string (the same rule as the access line);
* one CLIENT child span for the upstream exchange, whose context is what the upstream receives in
  ``traceparent`` (the client's own is replaced, its ``tracestate`` kept only with its trace);
* the trace id goes into the request's access line (:attr:`RequestContext.trace_id`);
* spans are exported by OTLP/HTTP from the SDK's batch processor thread, through a bounded queue:
  a slow or dead collector drops spans past ``queue_size`` and never touches a request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict

from gateway import __version__
from gateway.core.context import RequestContext

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from gateway.app import Gateway
    from gateway.config import TracingConfig

__all__ = ["EXPORT_INTERVAL", "Tracing", "install"]

# How often finished spans are sent (the SDK's default is 5 s; a second keeps traces prompt).
EXPORT_INTERVAL = 1.0
# Admin-listener probe paths, asked every few seconds by orchestrators; never traced.
_PROBES = frozenset({"/healthz", "/readyz"})
SPANS: web.RequestKey[tuple[Span, Span]] = web.RequestKey("gateway.spans", tuple)


class Tracing:
    """A tracer provider with its OTLP/HTTP exporter, and the gateway's two hooks into requests."""

    def __init__(self, cfg: TracingConfig) -> None:
        # Imported here: a gateway without a tracing section never loads OpenTelemetry.
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.timeout = cfg.timeout
        self.provider = TracerProvider(
            resource=Resource.create(
                {"service.name": cfg.service_name, "service.version": __version__}
            ),
            sampler=ParentBased(TraceIdRatioBased(cfg.sampling_ratio)),
        )
        self.provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=cfg.endpoint, timeout=cfg.timeout),
                max_queue_size=cfg.queue_size,
                max_export_batch_size=min(512, cfg.queue_size),
                schedule_delay_millis=EXPORT_INTERVAL * 1000,
                export_timeout_millis=cfg.timeout * 1000,
            )
        )
        # Not registered as the global provider: each Gateway owns its own (tests run several).
        self.tracer = self.provider.get_tracer("gateway", __version__)
        self.propagator = TraceContextTextMapPropagator()
        self.in_span = trace.set_span_in_context
        self.server_kind, self.client_kind = trace.SpanKind.SERVER, trace.SpanKind.CLIENT
        self.error = trace.Status(trace.StatusCode.ERROR)

    # -- the request's span ------------------------------------------------------------------------

    def _server_span(self, request: web.Request, ctx: RequestContext) -> Span:
        """The request's span, started back when the request arrived (``ctx.started``)."""
        parent = self.propagator.extract(request.headers)
        started = time.time_ns() - int((time.perf_counter() - ctx.started) * 1e9)
        route = ctx.route  # matched by now whenever a route exists (routing is the first step)
        name = f"{request.method} {route.path}" if route is not None else request.method
        span = self.tracer.start_span(
            name, context=parent, kind=self.server_kind, start_time=started
        )
        ctx.trace_id = format(span.get_span_context().trace_id, "032x")
        return span

    def upstream_headers(self, request: web.Request, headers: CIMultiDict[str]) -> None:
        """Forwarder hook, right before the exchange: start the upstream span, send its context."""
        ctx = RequestContext.of(request)
        server = self._server_span(request, ctx)
        headers.popall("tracestate", None)  # the client's, meaningful only with its traceparent
        if not server.is_recording():
            # Not sampled: no span of this trace is recorded anywhere, so the upstream only needs
            # the trace id and the "not sampled" flag; a child span would be pure cost.
            self.propagator.inject(headers, context=self.in_span(server))
            return
        route = ctx.route
        upstream = route.upstream if route is not None and route.upstream else "upstream"
        child = self.tracer.start_span(
            f"{request.method} {upstream}",
            context=self.in_span(server),
            kind=self.client_kind,
            attributes={"gateway.upstream": upstream},
        )
        request[SPANS] = (server, child)
        self.propagator.inject(headers, context=self.in_span(child))

    def observe(
        self, request: web.Request, response: web.StreamResponse | None, ctx: RequestContext
    ) -> None:
        """Completion observer (runs before the access line, which then carries the trace id)."""
        spans = request.get(SPANS)
        if spans is not None:
            server, child = spans
        elif ctx.route is None and request.path in _PROBES:
            return  # liveness/readiness probes (HEALTHCHECK, kubelet): not traffic worth a trace
        elif ctx.trace_id is None:  # refused (or answered by the gateway) before any upstream
            server, child = self._server_span(request, ctx), None
        else:
            return  # not sampled: nothing to record (the trace id is already in ctx)
        status = response.status if response is not None else 0
        if child is not None and child.is_recording():
            upstream = ctx.timing.get("upstream")
            if ctx.decision == "allowed":
                child.set_attribute("http.response.status_code", status)
            else:
                child.set_attribute("gateway.reason", ctx.reason or "")
                if status >= 500:
                    child.set_status(self.error)
            start = getattr(child, "start_time", None)
            child.end(
                end_time=start + int(upstream * 1e9)
                if start is not None and upstream is not None
                else None
            )
        elif child is not None:
            child.end()
        if server.is_recording():
            route = ctx.route
            principal, ident = ctx.principal, ctx.identity
            attrs: dict[str, Any] = {
                "http.request.method": request.method,
                "http.response.status_code": status,
                "gateway.request_id": ctx.request_id,
                "gateway.decision": ctx.decision,
            }
            if route is not None:
                attrs["http.route"] = route.path
                attrs["gateway.route"] = route.name
            if ctx.reason:
                attrs["gateway.reason"] = ctx.reason
            if ident is not None:
                attrs["gateway.workspace.id"] = ident.workspace.id
            if principal is not None:
                if principal.token_id:
                    attrs["gateway.token.id"] = principal.token_id
                user = ident.user_id if ident else principal.user_id
                if user:
                    attrs["gateway.user.id"] = user
            server.set_attributes(attrs)
            if status >= 500:
                server.set_status(self.error)
        server.end()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def close(self) -> None:
        """Flush what is queued, waiting at most one export timeout: a collector that is down must
        not hold up a shutdown. The flush runs in a daemon thread, so the process can exit anyway.
        """
        done = threading.Event()

        def shutdown() -> None:
            try:
                self.provider.shutdown()
            finally:
                done.set()

        threading.Thread(target=shutdown, name="gateway-tracing-shutdown", daemon=True).start()
        await asyncio.to_thread(done.wait, self.timeout + 1.0)


def install(gw: Gateway) -> None:
    cfg = gw.config.tracing
    if cfg is None:
        return  # off: nothing imported, nothing added to the request path
    tracing = Tracing(cfg)
    # First, so the access line sees the trace id.
    gw.hooks.observers = (tracing.observe, *gw.hooks.observers)
    gw.hooks.upstream_headers += (tracing.upstream_headers,)
    gw.closers.append(tracing.close)

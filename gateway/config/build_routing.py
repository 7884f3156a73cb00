"""Building the runtime form of ``upstreams`` and ``routes``, with the rules across them (a route
naming an unknown upstream, a duplicate route name, a route shadowed by an earlier one), and the
built-in route every gateway has (leaked-token revocation).
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.config.document import Document
from gateway.config.document_routing import UpstreamDoc
from gateway.config.problems import Report
from gateway.config.runtime_routing import HealthCheck, Route, TargetHealth, Upstream, UpstreamTLS

__all__ = ["LEAK_REVOKE_PATH", "build_routes", "build_upstream", "leak_routes", "warn_shadowed"]

LEAK_REVOKE_PATH = "/credentials/revoke"


def build_upstream(name: str, u: UpstreamDoc, warn: Report) -> Upstream:
    targets = tuple(u.targets or [u.url or ""])
    tls = None
    if u.tls is not None:
        tls = UpstreamTLS(**u.tls.model_dump())
        if not tls.verify:
            warn(
                f"upstreams.{name}.tls.verify",
                "is false: the upstream's certificate is NOT verified; anyone on the path can "
                "impersonate it and read every token and identity header sent to it",
            )
    h = u.health
    check = HealthCheck(**h.check.model_dump()) if h.check is not None else None
    return Upstream(
        name=name,
        url=targets[0],
        environments={env: url for env, url in u.environments.items() if url},
        connect_timeout=u.connect_timeout,
        timeout=u.timeout,
        max_connections=u.max_connections,
        targets=targets,
        balance=u.balance,
        tls=tls,
        health=TargetHealth(max_failures=h.max_failures, backoff=h.backoff, check=check),
    )


def build_routes(
    doc: Document, place: Callable[[int], int], upstreams: set[str], error: Report
) -> tuple[Route, ...]:
    out: list[Route] = []
    names: set[str] = set()
    for n, r in enumerate(doc.routes):
        i = place(n)
        path = f"routes[{i}]"
        name = r.name if r.name is not None else f"route{i}"
        if name in names:
            error(f"{path}.name", "duplicates another route's name", name)
        names.add(name)
        upstream = r.upstream
        if r.handler is None and upstream is None:
            if len(upstreams) == 1:
                upstream = next(iter(upstreams))
            else:
                error(f"{path}.upstream", "is required (there is more than one upstream)")
        if upstream is not None and upstream not in upstreams:
            error(f"{path}.upstream", "names an unknown upstream", upstream)
        out.append(
            Route(
                name=name,
                path=r.path,
                methods=frozenset(r.methods) if r.methods is not None else None,
                upstream=upstream,
                scopes_any=tuple(r.scopes.any_of),
                scopes_all=tuple(r.scopes.all_of),
                public=r.public,
                strip_prefix=r.strip_prefix,
                add_prefix=r.add_prefix,
                keep_credential=r.keep_credential,
                handler=r.handler,
                auth_methods=frozenset(r.auth_methods),
                max_body_bytes=r.max_body_bytes,
                method_override=r.method_override,
                index=i,
                tags=frozenset(r.tags),
                require_client_certificate=r.require_client_certificate,
            )
        )
    return tuple(out)


def warn_shadowed(routes: tuple[Route, ...], warn: Report) -> None:
    """Two routes with the same pattern and overlapping methods: the later one never matches."""
    for i, a in enumerate(routes):
        for b in routes[i + 1 :]:
            if a.path != b.path:
                continue
            if a.methods is None or b.methods is None or a.methods & b.methods:
                warn(
                    f"routes[{b.index}]",
                    f"is shadowed by routes[{a.index}] ({a.name}) with the same path and methods",
                    b.name,
                )


def leak_routes(start: int) -> tuple[Route, ...]:
    """``POST /credentials/revoke``: anyone reports leaked tokens (:mod:`gateway.features.leaks`)."""
    return (
        Route(
            name="credentials-revoke",
            path=LEAK_REVOKE_PATH,
            methods=frozenset({"POST"}),
            public=True,
            handler="revoke_leaked",
            max_body_bytes=128 * 1024,  # 1,000 tokens; gateway.features.leaks.MAX_BODY
            index=start,
        ),
    )

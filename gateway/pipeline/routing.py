"""Route matching on a segment trie, built once per config.

Precedence is deterministic and independent of file order: at each segment a literal beats a
``{param}``, which beats a trailing ``**``; the most specific route wins. Among routes with the same
pattern, the first in the file that allows the method wins (``gateway check`` warns about the
others). A path that matches only routes of other methods gets 405 with ``Allow``; no match, 404.
Matching costs one dict lookup per segment plus backtracking only where params or globs compete.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.config import EXPLICIT_METHODS, HTTP_METHODS, Route
from gateway.core.errors import MethodNotAllowed, RouteNotFound

__all__ = ["Match", "Router"]


@dataclass(slots=True)
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    param_name: str | None = None
    routes: list[Route] = field(default_factory=list)  # routes ending exactly here
    glob: list[Route] = field(default_factory=list)  # routes ending in '/**' here


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    params: dict[str, str]


def _by_method(routes: list[Route], method: str) -> Route | None:
    for r in routes:
        if r.methods is None:
            if method not in EXPLICIT_METHODS:  # TRACE, CONNECT: only where a route names them
                return r
        elif method in r.methods or (method == "HEAD" and "GET" in r.methods):
            return r
    return None


class Router:
    """Matches (method, decoded segments) to the most specific route."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._root = _Node()
        for route in routes:
            self._add(route)

    def _add(self, route: Route) -> None:
        node = self._root
        segments = route.path.split("/")[1:]
        if segments == [""]:
            segments = []
        for seg in segments:
            if seg == "**":
                node.glob.append(route)
                return
            if seg.startswith("{"):
                if node.param is None:
                    node.param = _Node()
                    node.param_name = seg[1:-1]
                node = node.param
            else:
                node = node.literal.setdefault(seg, _Node())
        node.routes.append(route)

    def match(self, method: str, segments: tuple[str, ...]) -> Match:
        """The route for ``method`` and ``segments``; raise 404 or 405 (with ``Allow``)."""
        found = self._find(self._root, segments, 0, method, {})
        if found is not None:
            return found
        allowed: set[str] = set()
        self._collect_methods(self._root, segments, 0, allowed)
        if allowed:
            raise MethodNotAllowed(headers={"Allow": ", ".join(sorted(allowed))})
        raise RouteNotFound()

    def _find(
        self, node: _Node, segs: tuple[str, ...], i: int, method: str, params: dict[str, str]
    ) -> Match | None:
        if i == len(segs):
            route = _by_method(node.routes, method) or _by_method(node.glob, method)
            return Match(route, params) if route else None
        seg = segs[i]
        child = node.literal.get(seg)
        if child is not None:
            m = self._find(child, segs, i + 1, method, params)
            if m is not None:
                return m
        if node.param is not None and seg != "":
            m = self._find(node.param, segs, i + 1, method, {**params, node.param_name or "": seg})
            if m is not None:
                return m
        route = _by_method(node.glob, method)
        return Match(route, params) if route else None

    def _collect_methods(self, node: _Node, segs: tuple[str, ...], i: int, out: set[str]) -> None:
        for r in node.glob:
            out.update(r.methods or HTTP_METHODS)
        if i == len(segs):
            for r in node.routes:
                out.update(r.methods or HTTP_METHODS)
            return
        child = node.literal.get(segs[i])
        if child is not None:
            self._collect_methods(child, segs, i + 1, out)
        if node.param is not None and segs[i] != "":
            self._collect_methods(node.param, segs, i + 1, out)

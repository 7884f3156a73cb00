"""The upstream request's headers: rebuilt from the client's, never passed through blindly.

Which client headers pass is decided by :mod:`gateway.edge.headerpolicy` (hop-by-hop and
gateway-owned names, identity and credential headers and cookies, client-address headers from
untrusted peers, method and URL overrides — compared in any letter case and with ``_`` read as
``-``); headers named in ``Connection`` are dropped; then the gateway adds ``X-Forwarded-*``
(trusting a client's only from a configured proxy address), the request id and the identity
headers. :class:`UpstreamHeaders` is the forwarder's base class, so building them costs no
indirection on the request path.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.config import Config, IdentityHeaders, Route
from gateway.core.identity import Identity
from gateway.edge.headerpolicy import (
    CLIENT_ADDRESS,
    CREDENTIAL,
    DROP,
    FORWARDED,
    HOP_BY_HOP,
    METHOD_OVERRIDE,
    HeaderPolicy,
    credential_cookies,
    is_trusted_peer,
)

if TYPE_CHECKING:  # types only: the hook points live with the pipeline
    from gateway.pipeline.hooks import HeaderHook

__all__ = ["UpstreamHeaders", "connection_listed"]

# What every proxy in front of the decision endpoint sets itself; the rest of FORWARDED (a
# client's X-Real-IP, Forwarded) is named for removal like any header proxy mode withholds.
PROXY_SETS = FORWARDED - {"x-real-ip", "forwarded"}


class UpstreamHeaders:
    """The header side of the forwarder: what goes upstream, and what a deciding proxy strips."""

    def __init__(
        self,
        config: Config,
        credential_headers: Iterable[str],
        header_hooks: Sequence[HeaderHook] = (),
    ) -> None:
        # Last say over the upstream request's headers (trace context); empty costs one loop test.
        self.header_hooks = tuple(header_hooks)
        self.names: IdentityHeaders = config.identity_headers
        self.policy = HeaderPolicy(config, credential_headers, credential_cookies(config))
        self.trusted = config.trusted_proxies

    def build_headers(
        self,
        request: web.Request,
        route: Route,
        identity: Identity | None,
        request_id: str,
        identity_headers: tuple[tuple[str, str], ...] | None = None,
    ) -> CIMultiDict[str]:
        """The headers the upstream gets: the client's own (see :mod:`gateway.edge.headerpolicy`),
        ``X-Forwarded-*``, the request id and the identity headers (``identity_headers`` when
        the caller has them already: :meth:`identity_block` of ``identity``)."""
        incoming = request.headers
        listed = connection_listed(incoming)
        policy = self.policy
        known = policy.verdicts  # one dict lookup per header; a method call only for new names
        peer = request.remote or ""
        trusted = is_trusted_peer(peer, self.trusted)
        out: CIMultiDict[str] = CIMultiDict()
        for name, value in incoming.items():
            key = name.lower()
            v = known.get(key)
            if v is None:
                v = policy.verdict(key)
            if v:  # anything but KEEP: one comparison on the common path
                if v == DROP:
                    continue
                if v == CREDENTIAL:
                    if not route.keep_credential:
                        continue
                elif v == CLIENT_ADDRESS:
                    if not trusted:
                        continue
                elif v == METHOD_OVERRIDE:
                    if not route.method_override:
                        continue
                elif not route.keep_credential:  # COOKIE
                    value = policy.strip_cookies(value)
                    if not value:
                        continue
            if listed is not None and key in listed:
                continue
            out.add(name, value)
        if trusted:
            prior = ", ".join(incoming.getall("X-Forwarded-For", ()))
            out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
            out["X-Forwarded-Proto"] = incoming.get("X-Forwarded-Proto", request.scheme)
            out["X-Forwarded-Host"] = incoming.get("X-Forwarded-Host", incoming.get("Host", ""))
        else:
            out["X-Forwarded-For"] = peer
            out["X-Forwarded-Proto"] = request.scheme
            out["X-Forwarded-Host"] = incoming.get("Host", "")
        out["X-Request-Id"] = request_id
        if identity_headers is not None:
            for name, value in identity_headers:
                out[name] = value
        elif identity is not None:
            self.add_identity(out, identity)
        for hook in self.header_hooks:
            hook(request, out)
        return out

    def add_identity(self, out: CIMultiDict[str], identity: Identity) -> None:
        """The identity headers the upstream trusts: sent upstream in proxy mode, and returned to
        the proxy by the external-authorization decision endpoint (:mod:`gateway.features.extauth`)."""
        for name, value in self.identity_block(identity):
            out[name] = value

    def identity_block(self, identity: Identity) -> tuple[tuple[str, str], ...]:
        """The identity headers as (name, value) pairs, in order; the cache-hit memo keeps them
        per identity (gateway/pipeline/memo.py), so a hit merges them without recomputing."""
        n = self.names
        ws = identity.workspace
        block = []
        if identity.token_id:
            block.append((n.token_id, identity.token_id))
        if identity.user_id:
            block.append((n.user_id, identity.user_id))
        block += [
            (n.workspace_id, ws.id),
            (n.workspace_slug, ws.slug),
            (n.scopes, _scope_list(identity.scopes)),
            (n.auth_method, identity.auth_method),
            (n.environment, identity.environment),
        ]
        return tuple(block)

    def stripped(self, incoming: CIMultiDictProxy[str], route: Route) -> list[str]:
        """The client's header names :meth:`build_headers` would withhold from the upstream for
        the upstream's sake: what a proxy deciding through the gateway must strip itself.

        The same verdicts as proxy mode (:mod:`gateway.edge.headerpolicy`): credentials (unless the
        route keeps them), the gateway's namespace and identity headers, `_` twins, URL overrides,
        method overrides (unless the route honours them) and client-address headers (the peer
        asking is the proxy, not the client, so they are never trusted here). Hop-by-hop headers
        and ``X-Forwarded-For/-Proto/-Host`` are the proxy's own business (a client's
        ``X-Real-IP`` and ``Forwarded`` are named: Envoy and Traefik set neither); a credential cookie cannot be named
        without dropping every cookie, so it is not (docs/external-auth.md says so).
        """
        policy = self.policy
        out = set()
        for name in incoming:
            key = name.lower()
            v = policy.verdict(key)
            if v == DROP:
                if key not in HOP_BY_HOP and key not in PROXY_SETS:
                    out.add(key)
            elif (
                (v == CREDENTIAL and not route.keep_credential)
                or (v == METHOD_OVERRIDE and not route.method_override)
                or v == CLIENT_ADDRESS
            ):
                out.add(key)
        return sorted(out)


@functools.lru_cache(maxsize=4096)  # bounded: token scopes are arbitrary subsets
def _scope_list(scopes: frozenset[str]) -> str:
    """The scopes header value, sorted; remembered per set (few distinct sets, asked per request)."""
    return " ".join(sorted(scopes))


def connection_listed(headers: CIMultiDictProxy[str]) -> frozenset[str] | None:
    """Names the ``Connection`` header lists beyond the hop-by-hop ones (``None``: none)."""
    listed = headers.getall("Connection", ())
    if not listed:
        return None
    extra = frozenset(t.strip().lower() for value in listed for t in value.split(","))
    return None if extra <= HOP_BY_HOP else extra

"""Which client request headers reach an upstream: one precomputed verdict per header name.

Upstreams trust what the gateway sends them, so only the upstream's own headers pass; everything
the gateway owns or trusts is decided here:

* hop-by-hop and framing headers (``Connection``, ``Transfer-Encoding``, ``Content-Length``, …)
  and ``Expect`` (the gateway answers ``100 Continue`` itself): dropped;
* the whole ``X-Gateway-*`` namespace and the configured identity headers: dropped (the gateway
  adds its own afterwards);
* ``X-Forwarded-For/-Proto/-Host``, ``Forwarded``, ``X-Real-IP``: dropped and rebuilt;
* other client-address headers (``X-Client-IP``, ``True-Client-IP``, ``CF-Connecting-IP``,
  ``X-Forwarded-Port/-Prefix/-Server``, ``X-Host``, …): kept only from a trusted proxy;
* the credential headers (and ``X-Authorization``): dropped unless the route keeps the credential;
  cookies the gateway accepts as a credential (session JWT, dashboard session) are removed from
  ``Cookie``, the others kept;
* method overrides (``X-HTTP-Method-Override``, ``X-HTTP-Method``, ``X-Method-Override``):
  kept only on routes with ``method_override``; URL overrides (``X-Original-URL``,
  ``X-Rewrite-URL``): always dropped.

Names are compared as upstream frameworks compare them: letter case ignored and ``_`` read as ``-``
(WSGI and CGI servers turn both into ``HTTP_X_FORWARDED_FOR``). A ``_`` spelling of any header
the gateway owns or trusts is dropped even where the ``-`` spelling passes (the workspace header,
``Content-Type``), so a twin can never override what the gateway checked. Each distinct name is
classified once and remembered (bounded), so a request costs one dict lookup per header.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Final

from gateway.config import Config

__all__ = [
    "CLIENT_ADDRESS",
    "COOKIE",
    "CREDENTIAL",
    "DASHBOARD_SIGNIN_COOKIE",
    "DROP",
    "FORWARDED",
    "HOP_BY_HOP",
    "KEEP",
    "METHOD_OVERRIDE",
    "METHOD_OVERRIDE_HEADERS",
    "NAMESPACE",
    "HeaderPolicy",
    "credential_cookies",
    "header_key",
    "is_method_param",
    "is_trusted_peer",
]

KEEP: Final = 0
DROP: Final = 1
CREDENTIAL: Final = 2  # dropped unless the route keeps the credential
CLIENT_ADDRESS: Final = 3  # dropped unless the peer is a trusted proxy
METHOD_OVERRIDE: Final = 4  # dropped unless the route honours method overrides
COOKIE: Final = 5  # credential cookies removed from the value

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
# Rebuilt by the forwarder from the connection (or a trusted proxy's values).
FORWARDED = frozenset(
    {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip"}
)
# Other names frameworks and CDNs read the client's address or the public URL from.
CLIENT_ADDRESS_HEADERS = frozenset(
    {
        "x-client-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-cluster-client-ip",
        "x-original-forwarded-for",
        "x-forwarded",
        "forwarded-for",
        "client-ip",
        "x-remote-ip",
        "x-remote-addr",
        "x-originating-ip",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-server",
        "x-forwarded-scheme",
        "x-forwarded-ssl",
        "x-url-scheme",
        "x-host",
        # platforms' own client-address and scheme headers, and names bypass kits try
        "x-true-ip",
        "akamai-client-ip",
        "x-custom-ip-authorization",
        "x-proxyuser-ip",
        "x-appengine-user-ip",
        "x-azure-clientip",
        "x-azure-socketip",
        "x-envoy-external-address",
        "front-end-https",
    }
)
METHOD_OVERRIDE_HEADERS = ("x-http-method-override", "x-http-method", "x-method-override")
URL_OVERRIDE_HEADERS = frozenset({"x-original-url", "x-rewrite-url", "x-original-uri"})
# Always the gateway's: `Expect` is answered at the edge (an upstream that never sends 100
# must not stall the client), the request id is the gateway's own.
GATEWAY_OWNED = frozenset({"expect", "x-request-id"})
# Read by the gateway and forwarded in their `-` spelling only (a `_` twin is dropped).
READ_BY_GATEWAY = frozenset({"content-type", "origin", "cookie"})
# Read as `Authorization` by frameworks behind servers that strip that header: a credential too.
CREDENTIAL_ALIASES = frozenset({"x-authorization"})
NAMESPACE = "x-gateway-"
# The dashboard's sign-in cookie, defined here (the edge strips it from upstream requests) and
# imported by gateway.features.dashboard.signin: features import the edge, never the reverse.
DASHBOARD_SIGNIN_COOKIE = "gw_dashboard"
# RFC 9110 token characters (a cookie name's alphabet), as a regex character class body.
_TOKEN_CHARS = r"!#$%&'*+.^_`|~0-9A-Za-z-"
_REMEMBER = 4096  # distinct header names classified and remembered; others are classified anew


def is_method_param(name: str) -> bool:
    """Whether a (decoded) parameter name is ``_method`` as some framework reads it: PHP (so
    Laravel and Symfony) drops leading spaces and reads ``.``, `` `` and an unclosed ``[`` as
    ``_``, so ``.method`` is ``_method`` there; ``_method[…]`` is that field too."""
    n = name.lstrip(" ").replace(" ", "_").replace(".", "_")
    if n.startswith("[") and "]" not in n:
        n = "_" + n[1:]
    return n.partition("[")[0] == "_method"


def header_key(name: str) -> str:
    """The name as upstream frameworks compare it: case-folded, ``_`` read as ``-``."""
    return name.lower().replace("_", "-")


class HeaderPolicy:
    """The verdict for each header name, from the config; see the module docstring."""

    def __init__(
        self, config: Config, credential_headers: Iterable[str], credential_cookies: Iterable[str]
    ) -> None:
        self.identity_keys = frozenset(header_key(n) for n in config.identity_headers.names())
        self.credential_keys = CREDENTIAL_ALIASES | {header_key(n) for n in credential_headers}
        self.credential_cookies = frozenset(credential_cookies)
        workspace = config.workspace.header
        self.guarded = READ_BY_GATEWAY | (
            {header_key(workspace)} if workspace is not None else set()
        )
        # Names classified so far (bounded): the forwarder reads it directly on the hot path.
        self.verdicts: dict[str, int] = {}
        names = "|".join(re.escape(n) for n in sorted(self.credential_cookies))
        self.cookie_name = (
            re.compile(rf"(?:^|[^{_TOKEN_CHARS}])(?:{names})\s*=", re.IGNORECASE) if names else None
        )

    def verdict(self, key: str) -> int:
        """The verdict for a lower-cased header name."""
        try:
            return self.verdicts[key]
        except KeyError:
            pass
        verdict = self._classify(key)
        if len(self.verdicts) < _REMEMBER:
            self.verdicts[key] = verdict
        return verdict

    def _classify(self, key: str) -> int:
        norm = key.replace("_", "-")
        twin = norm != key  # a `_` spelling
        if (
            norm in HOP_BY_HOP
            or norm in FORWARDED
            or norm in URL_OVERRIDE_HEADERS
            or norm in GATEWAY_OWNED
            or norm in self.identity_keys
            or norm.startswith(NAMESPACE)
        ):
            return DROP
        if norm in self.credential_keys:
            return DROP if twin else CREDENTIAL
        if norm in CLIENT_ADDRESS_HEADERS:
            return DROP if twin else CLIENT_ADDRESS
        if norm in METHOD_OVERRIDE_HEADERS:
            return DROP if twin else METHOD_OVERRIDE
        if norm in self.guarded:
            if twin:
                return DROP
            if key == "cookie" and self.credential_cookies:
                return COOKIE
        return KEEP

    def strip_cookies(self, value: str) -> str:
        """``value`` (one Cookie header) without the credential cookies; may come back empty.

        Parsers disagree on separators (aiohttp and Python's ``SimpleCookie`` also split on
        ``,`` and whitespace, old servers on ``,``), so a ``;``-separated part is dropped when a
        credential cookie's name starts anywhere in it, in any case, followed by ``=``.
        """
        found = self.cookie_name
        if found is None:
            return value
        kept = [
            pair
            for pair in (p.strip() for p in value.split(";"))
            if pair and not found.search(pair)
        ]
        return "; ".join(kept)


def credential_cookies(config: Config) -> frozenset[str]:
    """Cookies the gateway accepts as a credential somewhere; never forwarded upstream."""
    names: set[str] = set()
    if config.sessions is not None and config.sessions.cookie:
        names.add(config.sessions.cookie)
    if config.dashboard is not None:
        names.add(DASHBOARD_SIGNIN_COOKIE)
        if config.sessions is not None:
            # The dashboard reads a session JWT from this cookie only through the session
            # verifier; without one it is just a cookie of the app's (default name "session").
            names.add(config.dashboard.session_jwt_cookie)
    return frozenset(names)


def is_trusted_peer(
    peer: str | None, nets: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    """Whether ``peer`` (an address as text) is inside ``trusted_proxies``: only then are its
    client-address headers believed. Anything that is not an address is untrusted."""
    if not peer or not nets:
        return False
    try:
        addr = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(addr in net for net in nets)

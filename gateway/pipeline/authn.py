"""Authentication: find exactly one credential, pick its authenticator, produce a Principal.

The credential's location and prefix pick exactly one token type. Its hash is looked up in the
positive cache first (only tokens that passed the shape check are ever cached); anything not found
there has its shape (length, alphabet, checksum) checked offline before the negative cache or the
store is asked, so garbage never costs a lookup. A value shaped like a JWT goes to the session authenticator when one is
configured. Messages say which class of problem occurred (missing, malformed, unknown, expired,
revoked) without revealing anything a guesser could use.

A request with no header credential may authenticate with its TLS client certificate (issue 22),
already verified by the listener against ``client_ca_file``: token types with
``client_certificate: true`` look up a stored credential registered for the certificate's
SHA-256 fingerprint, then for each of its SANs, then for its subject (see
:func:`certificate_keys`); revocation, expiry, the caches and the change feed are a token's. A
route with ``require_client_certificate`` needs both: the header credential decides the identity,
and the certificate must map to a live credential in the same workspace.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.config import Config, TokenType
from gateway.core import tokens
from gateway.core.errors import AuthenticationError, MultipleCredentials
from gateway.core.identity import Principal
from gateway.edge.tls import peer_certificate
from gateway.store.base import TokenRecord
from gateway.store.cache import AuthCache
from gateway.store.usage import UsageRecorder

__all__ = [
    "Authenticator",
    "Credential",
    "SessionVerifier",
    "TokenKey",
    "certificate_keys",
    "principal_for",
]

# A token credential: its value, its hash and the one token type its prefix picks.
TokenKey = tuple[str, str, TokenType]
# A session-JWT verifier (issue 5 plugs one in): raw JWT -> Principal, raising AuthenticationError.
SessionVerifier = Callable[[str], Awaitable[Principal]]


@dataclass(frozen=True, slots=True)
class Credential:
    header: str
    value: str
    types: tuple[
        TokenType, ...
    ]  # candidate token types read from this location, longest prefix first


class Authenticator:
    """Turns a request's credential into a :class:`Principal` (or raises 401/400)."""

    def __init__(
        self,
        config: Config,
        cache: AuthCache,
        hasher: tokens.TokenHasher,
        usage: UsageRecorder | None = None,
        session_verifier: SessionVerifier | None = None,
    ) -> None:
        self.cache = cache
        self.hasher = hasher
        self.usage = usage
        self.session_verifier = session_verifier
        self.reject_query = config.reject_query_credentials
        # Precomputed at load time: header (lowercase) -> (scheme, candidate types by prefix length).
        locations: dict[str, tuple[str | None, list[TokenType]]] = {}
        # Certificate types are never read from a header: their stored key is public information.
        self.cert_types = tuple(tt for tt in config.token_types if tt.client_certificate)
        for tt in config.token_types:
            if tt.client_certificate:
                continue
            key = tt.credential.header.lower()
            _, types = locations.setdefault(key, (tt.credential.scheme, []))
            types.append(tt)
        locations.setdefault("authorization", ("Bearer", []))
        self.locations: Mapping[str, tuple[str | None, tuple[TokenType, ...]]] = {
            k: (s, tuple(sorted(t, key=lambda x: -len(x.prefix))))
            for k, (s, t) in locations.items()
        }
        self.credential_headers = frozenset(self.locations)

    # -- extraction --------------------------------------------------------------------------------

    def extract(self, request: web.Request) -> Credential | None:
        """The request's one credential, ``None`` when it has none; 400 for two or more."""
        found: list[Credential] = []
        headers = request.headers
        for name, (scheme, types) in self.locations.items():
            for raw in headers.getall(name, ()):
                found.append(Credential(name, _strip_scheme(raw, scheme), types))
        if self.reject_query and request.query_string:
            query = request.query
            if any(q in query for q in self.reject_query):
                if found:
                    raise MultipleCredentials(
                        "Send the credential in a header only, not also in the query string.",
                        reason="credential_in_query",
                    )
                raise AuthenticationError(
                    "Credentials are not accepted in the query string.",
                    reason="credential_in_query",
                )
        if len(found) > 1:
            raise MultipleCredentials(reason="multiple_credentials")
        return found[0] if found else None

    # -- authentication ----------------------------------------------------------------------------

    def token_key(self, request: web.Request) -> TokenKey | None:
        """The request's token credential as (value, hash, type); ``None`` when its credential is
        no token (none, a JWT, a certificate, an unknown prefix), which :meth:`authenticate`
        decides. Raises what :meth:`extract` raises."""
        cred = self.extract(request)
        if cred is None or not cred.value or not cred.value.isascii():
            return None
        value = cred.value
        for tt in cred.types:
            if value.startswith(tt.prefix):
                return value, self.hasher(value), tt
        return None

    async def authenticate(self, request: web.Request) -> Principal:
        """The principal of the request's credential (or the refusal)."""
        return await self.authenticate_key(request, self.token_key(request))

    async def authenticate_key(self, request: web.Request, key: TokenKey | None) -> Principal:
        """:meth:`authenticate`, given what :meth:`token_key` returned for ``request``."""
        if key is not None:
            return await self._token(*key)
        cred = self.extract(request)
        if cred is None:
            if self.cert_types and request.transport is not None:
                peer = peer_certificate(request.transport)
                if peer is not None:
                    return await self.certificate(*peer)
            raise AuthenticationError("A credential is required.", reason="missing")
        if not cred.value or not cred.value.isascii():
            # Every credential the gateway accepts is ASCII; anything else (a raw non-UTF-8
            # byte arrives as a lone surrogate) is malformed, before any hashing encodes it.
            raise AuthenticationError("The credential is malformed.", reason="malformed")
        if (
            self.session_verifier is not None
            and cred.header == "authorization"
            and _looks_like_jwt(cred.value)
        ):
            return await self.session_verifier(cred.value)
        raise AuthenticationError("The credential is malformed.", reason="unknown_prefix")

    async def _token(self, value: str, digest: str, tt: TokenType) -> Principal:
        # A token in the positive cache matched a stored hash exactly, so it passed the shape
        # and checksum checks when it was minted: skip them (~4 µs) on the hot path. Anything
        # else is checked offline before the negative cache or the store is asked.
        found = self.cache.cached_token(digest)
        if found is None:
            try:
                tokens.check(value, tt.prefix)
            except tokens.TokenShapeError as exc:
                raise AuthenticationError(
                    "The credential is malformed.", reason="bad_" + str(exc).split()[-1]
                ) from None
            found = await self.cache.find_token(digest)
            if found is None:
                raise AuthenticationError("The credential is invalid.", reason="unknown")
        return self._principal(found, tt)

    async def certificate(self, cert: Mapping[str, Any], fingerprint: str) -> Principal:
        """The stored credential a verified client certificate maps to (401 when none)."""
        for tt in self.cert_types:
            for key in certificate_keys(cert, fingerprint):
                digest = self.hasher(tt.prefix + key)
                found = self.cache.cached_token(digest) or await self.cache.find_token(digest)
                if found is not None:
                    # The most specific registration decides, revoked or not: a revoked
                    # fingerprint is not rescued by a registration of its subject.
                    return self._principal(found, tt)
        raise AuthenticationError(
            "The client certificate is not a registered credential.", reason="unknown_certificate"
        )

    async def require_certificate(self, request: web.Request, principal: Principal) -> None:
        """For routes that need a client certificate as well as the credential: same workspace."""
        if principal.auth_method == "certificate":
            raise AuthenticationError(
                "This endpoint requires a credential as well as the client certificate.",
                reason="credential_missing",
            )
        peer = peer_certificate(request.transport) if self.cert_types else None
        if peer is None:
            raise AuthenticationError(
                "This endpoint requires a client certificate.", reason="certificate_missing"
            )
        cert = await self.certificate(*peer)
        workspace = principal.token.workspace_id if principal.token else None
        if cert.token is None or cert.token.workspace_id != workspace:
            raise AuthenticationError(
                "The client certificate belongs to another workspace.",
                reason="certificate_workspace",
            )

    def _principal(self, found: tuple[TokenRecord, float | None], tt: TokenType) -> Principal:
        record, not_after = found
        self.admit(record, not_after, tt)
        return principal_for(record, tt)

    def admit(self, record: TokenRecord, not_after: float | None, tt: TokenType) -> None:
        """The checks a known token passes on every request (the clock's and the record's), and
        its ``last_used_at``; raises the refusal. The cache-hit memo calls this too."""
        now = time.time()
        if record.revoked_at is not None:
            raise AuthenticationError("The credential has been revoked.", reason="revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise AuthenticationError("The credential has expired.", reason="expired")
        if not_after is not None and not_after <= now:
            # An old secret after rotation, past its grace period.
            raise AuthenticationError("The credential has been rotated.", reason="rotated")
        if record.type_prefix != tt.prefix:
            raise AuthenticationError("The credential is invalid.", reason="type_mismatch")
        if self.usage is not None:
            self.usage.touch(record.id, now)


def principal_for(record: TokenRecord, tt: TokenType | None) -> Principal:
    """The principal a stored token stands for (also used to compute its power, gateway.pipeline.authz)."""
    if tt is not None and tt.client_certificate:
        method = "certificate"
    elif record.kind == "oauth_access":
        method = "oauth"
    else:
        method = "token"
    return Principal(
        auth_method=method,
        token=record,
        token_type=tt,
        user_id=record.user_id,
        environment=record.environment,
    )


def _strip_scheme(raw: str, scheme: str | None) -> str:
    raw = raw.strip()
    if scheme is None:
        return raw
    head, _, rest = raw.partition(" ")
    if head.lower() != scheme.lower():
        return ""  # wrong scheme (e.g. Basic): treated as malformed
    return rest.strip()


def _looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2 and value.startswith("eyJ")


def certificate_keys(cert: Mapping[str, Any], fingerprint: str) -> Iterator[str]:
    """The keys a certificate credential may be registered under, most specific first:
    ``sha256:<hex fingerprint>``, then ``san:<type>:<value>`` for each subjectAltName
    (``san:DNS:svc.internal``, ``san:email:a@b.c``, ``san:URI:spiffe://…``), then
    ``subject:<RFC 4514 DN>`` (``subject:CN=svc,O=Example``; ``,``, ``+``, ``\\`` and the other
    special characters inside a value escaped with ``\\``)."""
    yield f"sha256:{fingerprint.lower()}"
    for kind, value in cert.get("subjectAltName", ()):
        yield f"san:{kind}:{value}"
    # RFC 4514: RDNs last-first, joined by ",", multi-valued ones by "+", values escaped, so
    # a value holding separators ("CN=billing,OU=Clients") cannot spell another subject.
    subject = ",".join(
        "+".join(f"{_DN_NAMES.get(name, name)}={_dn_escape(value)}" for name, value in rdn)
        for rdn in reversed(cert.get("subject", ()))
    )
    if subject:
        yield f"subject:{subject}"


def _dn_escape(value: str) -> str:
    """An attribute value as RFC 4514 (and cryptography's ``rfc4514_string``) writes it."""
    out = "".join("\\" + c if c in '\\",+;<>' else "\\00" if c == "\0" else c for c in value)
    if value.startswith(("#", " ")):
        out = "\\" + out
    if value.endswith(" ") and len(value) > 1:
        out = out[:-1] + "\\ "
    return out


_DN_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "domainComponent": "DC",
    "emailAddress": "emailAddress",
}

"""Token format: minting, offline parsing and hashing.

A minted token is ``<prefix><random><checksum>``:

* ``random`` is 40 base62 characters from :mod:`secrets` (~238 bits, well over the 160 required);
* ``checksum`` is the CRC32 of the random part in 6 base62 characters, so typos and garbage are
  refused offline, before any cache or store lookup (the GitHub token format: secret scanners can
  recognise the shape, and the gateway never spends a query on a string it could not have minted).

At rest only a digest is kept: SHA-256 of the whole token, or HMAC-SHA-256 with a configured pepper.
The first :data:`VISIBLE_PREFIX_LENGTH` characters are kept as the visible prefix shown in listings.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass

__all__ = [
    "BASE62",
    "CHECKSUM_LENGTH",
    "RANDOM_LENGTH",
    "VISIBLE_PREFIX_LENGTH",
    "TokenHasher",
    "TokenShapeError",
    "base62_encode",
    "check",
    "checksum",
    "mint",
    "new_id",
    "parse",
]

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE62_SET = frozenset(BASE62)
RANDOM_LENGTH = 40
CHECKSUM_LENGTH = 6
VISIBLE_PREFIX_LENGTH = 16


class TokenShapeError(ValueError):
    """The string cannot be a token this gateway minted (wrong prefix, length, alphabet, checksum)."""


def base62_encode(value: int, width: int) -> str:
    """Encode a non-negative integer in base62, left-padded with ``0`` to ``width`` characters."""
    out = []
    while value:
        value, rem = divmod(value, 62)
        out.append(BASE62[rem])
    return "".join(reversed(out)).rjust(width, "0")


def checksum(random_part: str) -> str:
    """The 6-character base62 CRC32 of ``random_part``."""
    # base62_encode(crc, 6) unrolled (a CRC32 is < 62**6): checked on every request.
    v = zlib.crc32(random_part.encode("ascii"))
    d = BASE62
    v, a = divmod(v, 62)
    v, b = divmod(v, 62)
    v, c = divmod(v, 62)
    v, e = divmod(v, 62)
    v, f = divmod(v, 62)
    return d[v] + d[f] + d[e] + d[c] + d[b] + d[a]


def mint(prefix: str) -> str:
    """A fresh token with ``prefix``; the only place plaintext secrets are created."""
    random_part = "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    return f"{prefix}{random_part}{checksum(random_part)}"


def new_id(prefix: str, length: int = 20) -> str:
    """A random public identifier such as ``tok_…`` (not a secret: ids appear in logs and URLs)."""
    return prefix + "".join(secrets.choice(BASE62) for _ in range(length))


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token whose shape checked out offline; ``prefix`` is the token type prefix it carries."""

    prefix: str
    value: str

    @property
    def visible_prefix(self) -> str:
        return self.value[:VISIBLE_PREFIX_LENGTH]


def parse(value: str, prefix: str) -> ParsedToken:
    """Check ``value`` against the minted shape for ``prefix``; raise :class:`TokenShapeError`."""
    check(value, prefix)
    return ParsedToken(prefix=prefix, value=value)


def check(value: str, prefix: str) -> None:
    """:func:`parse` without building its result (the request path only needs the verdict).

    The checks are ordered cheapest first and all happen before any lookup.
    """
    if not value.startswith(prefix):
        raise TokenShapeError("wrong prefix")
    body = value[len(prefix) :]
    if len(body) != RANDOM_LENGTH + CHECKSUM_LENGTH:
        raise TokenShapeError("wrong length")
    if not _BASE62_SET.issuperset(body):
        raise TokenShapeError("wrong alphabet")
    random_part, check = body[:RANDOM_LENGTH], body[RANDOM_LENGTH:]
    if not hmac.compare_digest(checksum(random_part), check):
        raise TokenShapeError("wrong checksum")


class TokenHasher:
    """Turns a plaintext token into the digest stored and looked up (hex, 64 characters)."""

    __slots__ = ("_pepper",)

    def __init__(self, pepper: str | None = None) -> None:
        self._pepper = pepper.encode() if pepper else None

    def __call__(self, token: str) -> str:
        # A client's raw non-UTF-8 byte arrives as a lone surrogate: hash it (it matches nothing)
        # instead of failing to encode it, wherever a presented token is looked up.
        data = token.encode("utf-8", "surrogatepass")
        if self._pepper is None:
            return hashlib.sha256(data).hexdigest()
        # One-shot C HMAC (the same digest as hmac.new(...).hexdigest(), a third of the cost).
        return hmac.digest(self._pepper, data, "sha256").hex()

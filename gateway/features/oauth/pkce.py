"""PKCE (RFC 7636), S256 only: ``plain`` would hand the verifier to anyone who sees the request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

__all__ = ["CHALLENGE", "VERIFIER", "challenge_for", "valid_challenge", "verify"]

# RFC 7636 §4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
# BASE64URL(SHA-256(...)) without padding is always 43 characters.
CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def challenge_for(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def valid_challenge(challenge: str) -> bool:
    return bool(CHALLENGE.fullmatch(challenge))


def verify(verifier: str, challenge: str) -> bool:
    """``verifier`` is well-formed and its S256 transform equals ``challenge`` (constant time)."""
    if not VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(challenge_for(verifier), challenge)

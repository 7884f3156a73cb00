"""PKCE (RFC 7636, S256 only) and redirect URI matching (exact; loopback port-agnostic, RFC 8252)."""

from __future__ import annotations

import pytest

from gateway.features.oauth import pkce, redirects


def test_s256_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce.challenge_for(verifier) == challenge
    assert pkce.verify(verifier, challenge)
    assert pkce.valid_challenge(challenge)


@pytest.mark.parametrize(
    "verifier",
    ["", "a" * 42, "a" * 129, "a" * 42 + "!", "a" * 42 + " ", "a" * 42 + "é"],
)
def test_malformed_verifiers_never_verify(verifier: str) -> None:
    # even when the challenge was computed from the very same string
    challenge = pkce.challenge_for(verifier.encode("ascii", "ignore").decode() or "x")
    assert not pkce.verify(verifier, challenge)


REGISTERED = ("https://app.example.com/callback", "http://127.0.0.1/cb", "com.example.app:/oauth")


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/callback",
        "http://127.0.0.1/cb",
        "http://127.0.0.1:8765/cb",
        "http://127.0.0.1:1/cb",
        "com.example.app:/oauth",
    ],
)
def test_registered_and_loopback_any_port_match(uri: str) -> None:
    assert redirects.matches(REGISTERED, uri)


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/callback/",
        "https://APP.example.com/callback",
        "https://app.example.com/callback?x=1",
        "https://app.example.com:443/callback",
        "http://127.0.0.1:8765/cb2",
        "http://127.0.0.1:8765/cb?x=1",
        "http://localhost:8765/cb",
        "https://127.0.0.1:8765/cb",
        "http://127.0.0.1:bad/cb",
        "http://user@127.0.0.1:8765/cb",
        "com.example.app:/other",
    ],
)
def test_anything_else_does_not_match(uri: str) -> None:
    assert not redirects.matches(REGISTERED, uri)


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("https://app.example.com/cb", True),
        ("http://127.0.0.1/cb", True),
        ("http://[::1]/cb", True),
        ("com.example.app:/cb", True),
        ("http://app.example.com/cb", False),
        ("https://app.example.com/cb#x", False),
        ("javascript:alert(1)", False),
        ("https:///nohost", False),
        ("", False),
    ],
)
def test_registration_rules(uri: str, ok: bool) -> None:
    assert (redirects.check_registration(uri) is None) is ok

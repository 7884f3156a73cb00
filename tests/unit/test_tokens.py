"""The token format: minted shape, offline rejection, hashing."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gateway.core import tokens


@pytest.mark.parametrize("prefix", ["vel_", "sk_live_", "sk_test_", "spedy_pat_", "gw_"])
def test_minted_tokens_have_the_documented_shape(prefix: str) -> None:
    t = tokens.mint(prefix)
    assert t.startswith(prefix)
    assert len(t) >= 48
    body = t[len(prefix) :]
    assert set(body) <= set(tokens.BASE62)
    # at least 160 bits of randomness: 40 base62 characters carry log2(62)*40 ≈ 238 bits
    assert tokens.RANDOM_LENGTH * 5.95 >= 160
    assert tokens.parse(t, prefix).value == t


def test_minted_tokens_differ() -> None:
    assert len({tokens.mint("gw_") for _ in range(1000)}) == 1000


def test_checksum_catches_every_single_character_typo() -> None:
    t = tokens.mint("gw_")
    for i in range(len("gw_"), len(t)):
        for c in "0aZ":
            if t[i] == c:
                continue
            typo = t[:i] + c + t[i + 1 :]
            with pytest.raises(tokens.TokenShapeError):
                tokens.parse(typo, "gw_")


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda t: "xx_" + t[3:], "wrong prefix"),
        (lambda t: t[:-1], "wrong length"),
        (lambda t: t + "A", "wrong length"),
        (lambda t: t[:10] + "-" + t[11:], "wrong alphabet"),
        (lambda t: t[:-6] + "000000", "wrong checksum"),
    ],
)
def test_parse_rejects_malformed(mutate, why: str) -> None:  # type: ignore[no-untyped-def]
    t = tokens.mint("gw_")
    with pytest.raises(tokens.TokenShapeError, match=why):
        tokens.parse(mutate(t), "gw_")


def test_hash_is_sha256_of_whole_token_or_hmac_with_pepper() -> None:
    t = tokens.mint("gw_")
    assert tokens.TokenHasher()(t) == hashlib.sha256(t.encode()).hexdigest()
    peppered = tokens.TokenHasher("pepper")(t)
    assert peppered == hmac.new(b"pepper", t.encode(), hashlib.sha256).hexdigest()
    assert peppered != tokens.TokenHasher()(t)


def test_visible_prefix_is_first_16_characters() -> None:
    t = tokens.mint("sk_live_")
    assert tokens.parse(t, "sk_live_").visible_prefix == t[:16]


@pytest.mark.parametrize("pepper", [None, "pepper"])
def test_a_non_utf8_token_hashes_instead_of_crashing(pepper: str | None) -> None:
    # A raw 0xff from the wire arrives as "\udcff" (surrogateescape); the hash must not raise,
    # so every door that looks a presented token up answers "unknown", not 500.
    hasher = tokens.TokenHasher(pepper)
    raw = "gw_" + b"\xff\xfe".decode("utf-8", "surrogateescape")
    assert len(hasher(raw)) == 64
    assert hasher(raw) != hasher("gw_")

"""Property-based tests (hypothesis) for the two parsers every request goes through.

* The token parser never crashes on any string, and accepts exactly the strings it could have
  minted: anything it accepts re-checks, and any single-character change to it is refused.
* The path normalizer never crashes, and what it accepts round-trips: normalizing its output gives
  the same output, and that output has no spelling a server downstream could read differently
  (no dot or empty segments, no encoded separators, no control characters).
"""

from __future__ import annotations

import hmac
import string
from unittest import mock

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from gateway.core import tokens
from gateway.core.errors import InvalidPath
from gateway.pipeline.paths import normalize

PREFIX = "gw_live_"
base62 = st.text(alphabet=tokens.BASE62, min_size=0, max_size=60)
any_text = st.text(max_size=120)
token_like = st.builds(lambda body: PREFIX + body, base62) | any_text


@given(token_like)
@example(PREFIX + "0" * 46)
@example(PREFIX.upper() + "A" * 46)
@settings(max_examples=400)
def test_token_parser_never_crashes_and_accepts_only_what_round_trips(value: str) -> None:
    try:
        parsed = tokens.parse(value, PREFIX)
    except tokens.TokenShapeError:
        return
    body = value[len(PREFIX) :]
    assert parsed.value == value
    assert tokens.checksum(body[: tokens.RANDOM_LENGTH]) == body[tokens.RANDOM_LENGTH :]
    assert tokens.parse(parsed.value, PREFIX) == parsed


@given(st.data())
@settings(max_examples=200)
def test_every_single_character_change_to_a_minted_token_is_refused(data: st.DataObject) -> None:
    t = tokens.mint(PREFIX)
    i = data.draw(st.integers(min_value=len(PREFIX), max_value=len(t) - 1))
    c = data.draw(st.sampled_from(tokens.BASE62))
    assume(c != t[i])
    changed = t[:i] + c + t[i + 1 :]
    try:
        tokens.parse(changed, PREFIX)
    except tokens.TokenShapeError:
        return
    # CRC32 folded into 6 base62 characters catches every single-character substitution.
    raise AssertionError(f"accepted a one-character typo at {i}")


def test_checksum_comparison_is_constant_time() -> None:
    t = tokens.mint(PREFIX)
    with mock.patch.object(hmac, "compare_digest", wraps=hmac.compare_digest) as cmp:
        tokens.parse(t, PREFIX)
    assert cmp.called, "the checksum must be compared with hmac.compare_digest"


segment_chars = string.ascii_letters + string.digits + "-._~!$&'()*+,=:@%/;\\?#\x00\x7f é"
raw_paths = st.lists(st.text(alphabet=segment_chars, max_size=12), max_size=6).map(
    lambda segs: "/" + "/".join(segs)
)
encoded = st.text(alphabet="%0123456789abcdefABCDEF./a", max_size=30).map(lambda s: "/" + s)


@given(raw_paths | encoded | any_text)
@example("/public/%2e%2e/admin")
@example("/a/%2F/b")
@example("/%c0%ae%c0%ae/")
@settings(max_examples=600)
def test_path_normalizer_never_crashes_and_its_output_round_trips(raw: str) -> None:
    try:
        out = normalize(raw)
    except InvalidPath:
        return
    assert normalize(out.path) == out
    assert out.path.startswith("/")
    assert "//" not in out.path
    for seg in out.segments[:-1]:
        assert seg not in {"", ".", ".."}
    for seg in out.segments:
        assert not set(seg) & set("/\\?#;%\x00\x7f")
        assert all(ord(ch) >= 0x20 for ch in seg)

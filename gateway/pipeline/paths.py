"""Path normalization: one canonical form, or a refusal.

The gateway matches and forwards the *same* string, so an upstream can never see a path that the
router did not. Anything a server or framework might interpret differently from us is refused rather
than guessed at: dot segments (raw or encoded), empty segments (``//``), encoded ``/`` ``\\`` ``.``
``#`` ``;`` ``?``, NUL and other control characters, ``;`` path parameters, raw backslashes, and
percent sequences that are malformed or not UTF-8. Percent-encoded unreserved characters are decoded
(``%41`` → ``A``), so two spellings of one path match one route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from gateway.core.errors import InvalidPath

__all__ = ["NormalizedPath", "normalize"]

_HEX = frozenset("0123456789abcdefABCDEF")
# Decoded characters that would change a path's meaning somewhere downstream.
_FORBIDDEN_DECODED = frozenset("/\\#?;%") | frozenset(chr(c) for c in range(0x20)) | {"\x7f"}
# Characters allowed raw in a segment (RFC 3986 pchar minus ';' which Tomcat & co. treat specially).
_SAFE = "-._~!$&'()*+,=:@"
MAX_PATH_LENGTH = 8192
# Non-empty segments of characters that need no decoding and that quote() keeps as they are
# (unreserved + _SAFE), with an optional trailing '/'.
_PLAIN = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,=:@]+)+/?")


@dataclass(frozen=True, slots=True)
class NormalizedPath:
    """The canonical path (re-encoded, what is forwarded) and its decoded segments (what matches)."""

    path: str
    segments: tuple[str, ...]


def _decode_segment(raw: str) -> str:
    if "%" not in raw:
        return raw
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        ch = raw[i]
        if ch == "%":
            if i + 2 >= n:
                raise InvalidPath("Malformed percent-encoding in the path.", reason="bad_percent")
            hi, lo = raw[i + 1], raw[i + 2]
            if hi not in _HEX or lo not in _HEX:
                raise InvalidPath("Malformed percent-encoding in the path.", reason="bad_percent")
            out.append(int(hi + lo, 16))
            i += 3
        else:
            out.extend(ch.encode("utf-8"))
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPath("The path is not valid UTF-8.", reason="bad_utf8") from None


def normalize(raw_path: str) -> NormalizedPath:
    """Normalize the path part of a request target (no query string); raise :class:`InvalidPath`."""
    if (
        len(raw_path) <= MAX_PATH_LENGTH
        and _PLAIN.fullmatch(raw_path)
        and "/./" not in raw_path + "/"
        and "/../" not in raw_path + "/"
    ):
        # The common case, decided by one regex: nothing to decode, refuse or re-encode, so the
        # raw path is already canonical (tests/unit check this against the general algorithm).
        return NormalizedPath(raw_path, tuple(raw_path[1:].split("/")))
    return _normalize_general(raw_path)


def _normalize_general(raw_path: str) -> NormalizedPath:
    if not raw_path.startswith("/"):
        raise InvalidPath("The path must start with '/'.", reason="not_absolute")
    if len(raw_path) > MAX_PATH_LENGTH:
        raise InvalidPath("The path is too long.", reason="too_long")
    if raw_path == "/":
        return NormalizedPath("/", ())
    raw_segments = raw_path[1:].split("/")
    segments: list[str] = []
    last = len(raw_segments) - 1
    for i, raw in enumerate(raw_segments):
        if ";" in raw:
            raise InvalidPath("Path parameters (';') are not allowed.", reason="path_params")
        if "\\" in raw:
            raise InvalidPath("Backslashes are not allowed in the path.", reason="backslash")
        seg = _decode_segment(raw)
        if seg == "" and i != last:
            raise InvalidPath("Empty path segments ('//') are not allowed.", reason="empty_segment")
        if seg in {".", ".."}:
            raise InvalidPath("Dot segments are not allowed in the path.", reason="dot_segment")
        if not _FORBIDDEN_DECODED.isdisjoint(seg):
            raise InvalidPath("The path holds a forbidden character.", reason="forbidden_char")
        if any(0x80 <= ord(c) <= 0x9F for c in seg):
            raise InvalidPath("The path holds a forbidden character.", reason="forbidden_char")
        segments.append(seg)
    path = "/" + "/".join(quote(s, safe=_SAFE) for s in segments)
    return NormalizedPath(path, tuple(segments))

"""Redirect URIs: what may be registered, and whether a requested one matches a registration.

Matching is exact string comparison, with one exception from RFC 8252 §7.3: for a loopback IP
literal (``http://127.0.0.1`` / ``http://[::1]``) the port is ignored, because native apps bind an
ephemeral port at run time. Nothing else is normalized, so an unregistered URI never matches.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["check_registration", "matches"]

_LOOPBACK = frozenset({"127.0.0.1", "[::1]", "localhost"})


def _loopback_parts(uri: str) -> tuple[str, str, str, str] | None:
    """(host, path, query, rest-of-scheme) for an http loopback URI, else None."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme != "http" or parts.fragment or parts.username or parts.password:
        return None
    host = parts.netloc.rsplit(":", 1)[0] if not parts.netloc.endswith("]") else parts.netloc
    if host not in _LOOPBACK:
        return None
    return host, parts.path, parts.query, parts.scheme


def check_registration(uri: str) -> str | None:
    """Why ``uri`` cannot be registered, or None when it can."""
    if not uri or len(uri) > 2000 or any(c.isspace() for c in uri):
        return "must be a non-empty URI without spaces"
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "is not a valid URI"
    if parts.fragment or "#" in uri:
        return "must not contain a fragment"
    if parts.scheme == "https":
        return None if parts.netloc else "must name a host"
    if parts.scheme == "http":
        if _loopback_parts(uri) is None:
            return "http is only allowed for loopback addresses (127.0.0.1, [::1], localhost)"
        return None
    # RFC 8252 §7.1 private-use schemes are reverse domain names: com.example.app:/callback.
    if "." in parts.scheme:
        return None
    return "must be https, http on a loopback address, or a private-use scheme (com.example.app:)"


def matches(registered: tuple[str, ...], requested: str) -> bool:
    if requested in registered:
        return True
    got = _loopback_parts(requested)
    if got is None:
        return False
    return any(_loopback_parts(r) == got for r in registered)

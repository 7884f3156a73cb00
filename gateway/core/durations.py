"""Durations written as text: ``30s``, ``10m``, ``12h``, ``30d``, ``2w`` -> seconds.

The one parser behind every duration a person types: config values (``oauth.code_ttl: 10m``), token
lifetimes and rotation grace periods on the CLI and the admin API.
"""

from __future__ import annotations

import re

from gateway.core.errors import InvalidArgument

__all__ = ["DURATION_PATTERN", "UNITS", "parse_duration", "seconds"]

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_PATTERN = r"^(\d+)([smhdw])$"
_DURATION = re.compile(DURATION_PATTERN)


def seconds(text: str) -> int | None:
    """Seconds in ``text`` (``"90m"`` -> 5400), or ``None`` when it is not a duration."""
    m = _DURATION.match(text.strip())
    if m is None:
        return None
    return int(m.group(1)) * UNITS[m.group(2)]


def parse_duration(text: str) -> float:
    """Seconds in ``text``, for a management door: not a duration is the caller's error."""
    value = seconds(text)
    if value is None:
        raise InvalidArgument(
            f"Invalid duration {text!r}: use e.g. 30d, 12h, 45m.", reason="duration"
        )
    return value

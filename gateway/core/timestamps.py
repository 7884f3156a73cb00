"""Points in time as text: :func:`iso` writes one (every JSON view and CLI table shows epoch
seconds this way) and :func:`parse_expiry` reads the expiry a person gives a credential (a duration
from now, or a date).

It lives in core because the management layer and features (OAuth, self-service) both show times:
in either one, the other's import would close a cycle (management.directory imports the OAuth
service, which shows times too).
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.core.durations import parse_duration
from gateway.core.errors import InvalidArgument

__all__ = ["iso", "parse_expiry"]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_expiry(expires_in: str | None, expires_at: str | None, now: float) -> float | None:
    if expires_in is not None and expires_at is not None:
        raise InvalidArgument("Give an expiry duration or a date, not both.", reason="expiry")
    if expires_in is not None:  # given but empty is an error, not "no expiry"
        return now + parse_duration(expires_in)
    if expires_at is not None:
        try:
            dt = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument(f"Invalid expiry date {expires_at!r}.", reason="expiry") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        ts = dt.timestamp()
        if ts <= now:
            raise InvalidArgument("The expiry date is in the past.", reason="expiry")
        return ts
    return None

"""What a failed upstream exchange becomes: the 502's stable reason id, and a log line for TLS."""

from __future__ import annotations

import logging

import aiohttp

from gateway.core.errors import UpstreamUnavailable

__all__ = ["failure_reason", "unavailable"]

log = logging.getLogger("gateway.proxy")


def unavailable(name: str, base: str, exc: BaseException) -> UpstreamUnavailable:
    """The 502 for a failed exchange; a TLS failure also gets a log line saying what was wrong."""
    reason = failure_reason(exc)
    if reason == "upstream_tls":
        cert_error = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", exc)
        problem = getattr(cert_error, "verify_message", None) or getattr(cert_error, "reason", None)
        log.warning("upstream %s (%s): TLS handshake failed: %s", name, base, problem or cert_error)
    return UpstreamUnavailable(reason=reason)


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientSSLError):
        return "upstream_tls"  # before ClientConnectorError, its base: not a closed port
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "upstream_refused"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "upstream_disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "upstream_payload"
    if isinstance(exc, aiohttp.ClientOSError):
        return "upstream_reset"
    return "upstream_error"

"""The runtime form of the edge sections (``listeners``, ``limits``): frozen, slotted dataclasses
that :mod:`gateway.edge` and :mod:`gateway.process` read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_CIPHERS", "LimitsConfig", "Listener", "ServerTLS"]


@dataclass(frozen=True, slots=True)
class Listener:
    host: str
    port: int
    tls: ServerTLS | None = None  # issue 22: HTTPS on this listener

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"


# TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are OpenSSL's, all of them sound).
DEFAULT_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!SHA1"


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """``listeners.*.tls``: the certificate a listener serves, and what it asks of clients."""

    cert_file: str
    key_file: str
    min_version: str = "TLSv1.2"
    ciphers: str = DEFAULT_CIPHERS
    client_ca_file: str | None = None
    client_auth: Literal["none", "optional", "required"] = "none"


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Bounds on what one client may cost; each breach gets a clear status."""

    # SIGTERM: stop accepting, let in-flight requests finish for up to this long, then exit.
    shutdown_grace: float = 30.0
    # Whole-request deadline (auth + upstream + relay); 504 when exceeded before the response starts.
    request_timeout: float = 300.0
    # Request body default for routes without max_body_bytes (None: unlimited, streamed).
    max_body_bytes: int | None = None
    # Header limits, enforced by the HTTP parser (431/400 before any handler runs).
    max_header_bytes: int = 16384
    max_line_bytes: int = 8190
    max_headers: int = 100
    # A connection that sends no complete request for this long (idle keep-alive, or a
    # slowloris trickling its headers) is closed.
    idle_timeout: float = 75.0
    # Open connections per worker; past it a new connection gets 503 TOO_MANY_CONNECTIONS.
    max_connections: int | None = 10000
    # Longest pause (seconds) between two pieces of a request body; past it 408 REQUEST_TIMEOUT
    # and the upstream request is abandoned, so a trickled body cannot hold an upstream connection.
    body_read_timeout: float = 5.0

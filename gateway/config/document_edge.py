"""``gateway.yaml``'s edge sections, what :mod:`gateway.edge` reads: ``listeners`` (addresses and
TLS), ``limits`` (what one client may cost), ``errors`` (the envelope) and ``trusted_proxies``.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    model_validator,
)

from gateway.config.fields import (
    PositiveFloat,
    PositiveInt,
    ReadableFile,
    Section,
    Text,
    check,
    default_of,
    one_or_many,
)
from gateway.config.problems import invalid
from gateway.config.runtime_edge import DEFAULT_CIPHERS, LimitsConfig

__all__ = [
    "ErrorsDoc",
    "LimitsDoc",
    "ListenerDoc",
    "ListenerField",
    "ListenersDoc",
    "ServerTLSDoc",
    "TrustedProxies",
    "parse_address",
]


# -- listeners ---------------------------------------------------------------------------------------


def _ciphers(value: str) -> str:
    try:
        ssl.create_default_context().set_ciphers(value)
    except ssl.SSLError:
        raise invalid("names no cipher this OpenSSL offers", value) from None
    return value


class ServerTLSDoc(Section):
    """``listeners.*.tls``: the certificate a listener serves, and what it asks of clients."""

    cert_file: ReadableFile
    key_file: ReadableFile
    min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    ciphers: Annotated[str, AfterValidator(_ciphers)] = DEFAULT_CIPHERS
    client_ca_file: ReadableFile | None = None
    client_auth: Literal["none", "optional", "required"] = "none"

    @model_validator(mode="after")
    def _ca_for_client_auth(self) -> ServerTLSDoc:
        if self.client_auth != "none" and self.client_ca_file is None:
            raise invalid(f"is required with client_auth: {self.client_auth}", at=".client_ca_file")
        return self


def parse_address(text: str) -> tuple[str, int] | None:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


_ADDRESS = "must be HOST:PORT with a port from 0 to 65535"


class ListenerDoc(Section):
    """A listener: ``HOST:PORT``, or ``{address: HOST:PORT, tls: {...}}`` for HTTPS (issue 22)."""

    address: Annotated[str, check(parse_address, _ADDRESS)]
    tls: ServerTLSDoc | None = None


def _listener(value: Any) -> Any:
    if isinstance(value, str | int) and not isinstance(value, bool):
        if parse_address(str(value)) is None:
            raise invalid(_ADDRESS, value)
        return {"address": str(value)}
    return value


ListenerField = Annotated[
    ListenerDoc, BeforeValidator(_listener, json_schema_input_type=str | ListenerDoc)
]


class ListenersDoc(Section):
    proxy: ListenerField = Field(default="127.0.0.1:8080", validate_default=True)
    admin: ListenerField | None = None
    metrics: ListenerField | None = None


# -- limits ------------------------------------------------------------------------------------------


class LimitsDoc(Section):
    shutdown_grace: PositiveFloat = default_of(LimitsConfig, "shutdown_grace")
    request_timeout: PositiveFloat = default_of(LimitsConfig, "request_timeout")
    max_body_bytes: PositiveInt | None = default_of(LimitsConfig, "max_body_bytes")
    max_header_bytes: PositiveInt = default_of(LimitsConfig, "max_header_bytes")
    max_line_bytes: PositiveInt = default_of(LimitsConfig, "max_line_bytes")
    max_headers: PositiveInt = default_of(LimitsConfig, "max_headers")
    idle_timeout: PositiveFloat = default_of(LimitsConfig, "idle_timeout")
    max_connections: PositiveInt | None = default_of(LimitsConfig, "max_connections")
    body_read_timeout: PositiveFloat = default_of(LimitsConfig, "body_read_timeout")


# -- errors and trusted proxies ----------------------------------------------------------------------


class ErrorsDoc(Section):
    envelope: Literal["default", "velt"] = "default"


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise invalid("must be an IP address or CIDR network", value) from None
    return value


TrustedProxies = Annotated[
    list[Annotated[Text, AfterValidator(_network)]],
    BeforeValidator(one_or_many, json_schema_input_type=str | list[str]),
]

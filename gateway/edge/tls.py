"""TLS contexts: the listeners' (with certificates that reload in place) and the upstreams'.

A listener's :class:`ssl.SSLContext` is fixed when its socket starts serving, so a reloaded
certificate cannot be put into it. :class:`ServerCerts` instead keeps the *current* context and
gives the listener the first one with an ``sni_callback`` that, during each new handshake, moves
the connection onto whatever context is current (OpenSSL's ``SSL_set_SSL_CTX``, which is what
``SSLSocket.context = …`` does). A reload builds a complete fresh context with
``load_cert_chain``; only when that succeeds is it made current, so a missing file or a
certificate and key that do not match are refused with an error naming the files while the old
certificate keeps serving. Connections already established keep the context they shook hands with.

The proxy listener looks at the first byte of each connection before any TLS (:class:`Sniffer`):
a TLS handshake (``0x16``) goes on to ``loop.start_tls``; anything else is plain HTTP sent to an
``https`` port and gets a plain ``400`` saying so (as nginx does), instead of a connection that
just ends. The bytes read to decide are handed to the TLS layer before its handshake
starts, so it sees every byte.

Client certificates (``client_auth``) are verified by OpenSSL during the handshake against
``client_ca_file``, expiry included: Python's ``ssl`` module cannot request a certificate without
verifying it, so an untrusted or expired one fails the handshake (alert ``unknown_ca`` /
``certificate_expired``) and never reaches the pipeline.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import hashlib
import logging
import os
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from gateway.config import ServerTLS, UpstreamTLS
from gateway.edge.responses import raw_refusal

__all__ = ["ServerCerts", "Sniffer", "TLSFileError", "peer_certificate", "upstream_context"]

log = logging.getLogger("gateway.tls")

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


class TLSFileError(Exception):
    """A certificate, key or CA file that cannot be used; the message names the file(s)."""


def _load(what: str, load: Any, *args: Any) -> None:
    try:
        load(*args)
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        files = " and ".join(str(a) for a in args if isinstance(a, str))
        raise TLSFileError(f"{what} {files}: {reason}") from exc


def server_context(cfg: ServerTLS) -> ssl.SSLContext:
    """A complete server context for ``cfg``; raises :class:`TLSFileError` naming a bad file."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[cfg.min_version]
    ctx.set_ciphers(cfg.ciphers)
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION
    ctx.set_alpn_protocols(["http/1.1"])
    _load("certificate/key", ctx.load_cert_chain, cfg.cert_file, cfg.key_file)
    if cfg.client_ca_file:
        _load("client CA file", ctx.load_verify_locations, cfg.client_ca_file)
    ctx.verify_mode = _CLIENT_AUTH[cfg.client_auth]
    return ctx


class ServerCerts:
    """A listener's TLS settings: the context it listens with, and reload of its files."""

    def __init__(self, cfg: ServerTLS, name: str) -> None:
        self.cfg = cfg
        self.name = name
        self.current = server_context(cfg)  # at start a bad file is fatal: raise
        self.listening = self.current
        self.listening.sni_callback = self._select
        self._stamps = self._read_stamps()

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(
            f for f in (self.cfg.cert_file, self.cfg.key_file, self.cfg.client_ca_file) if f
        )

    def _read_stamps(self) -> tuple[tuple[int, int, int] | None, ...]:
        out: list[tuple[int, int, int] | None] = []
        for f in self.files:
            try:
                st = os.stat(f)
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def _select(self, sock: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext) -> None:
        # Called for every handshake, with or without SNI; the new context's certificate is the
        # one the client sees.
        current = self.current
        if current is not ctx:
            sock.context = current

    def changed(self) -> bool:
        """Whether any of the files changed on disk since the last (attempted) load."""
        return self._read_stamps() != self._stamps

    def reload(self, why: str) -> bool:
        """Load the files into a fresh context and make it current; ``False`` keeps the old one."""
        self._stamps = self._read_stamps()
        try:
            fresh = server_context(self.cfg)
        except TLSFileError as exc:
            log.error(
                "TLS reload (%s) for the %s listener refused, the old certificate keeps serving: %s",
                why,
                self.name,
                exc,
            )
            return False
        self.current = fresh
        log.warning("TLS certificate reloaded (%s) for the %s listener", why, self.name)
        return True


def reload_all(certs: Iterable[ServerCerts], why: str, only_changed: bool = False) -> None:
    for c in certs:
        if not only_changed or c.changed():
            c.reload(why)


def upstream_context(cfg: UpstreamTLS | None) -> ssl.SSLContext:
    """The client context for an ``https`` upstream: verified against ``ca_file`` (or the system's
    CAs), with a client certificate when one is configured."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg is not None and cfg.ca_file:
        _load("upstream CA file", ctx.load_verify_locations, cfg.ca_file)  # only this CA
    else:
        ctx.load_default_certs()
    if cfg is not None:
        if cfg.cert_file and cfg.key_file:
            _load(
                "upstream client certificate/key", ctx.load_cert_chain, cfg.cert_file, cfg.key_file
            )
        if not cfg.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def peer_certificate(transport: Any) -> tuple[dict[str, Any], str] | None:
    """The verified client certificate of a TLS connection and its SHA-256 fingerprint (hex)."""
    if transport is None:
        return None
    sslobj = transport.get_extra_info("ssl_object")
    if sslobj is None:
        return None
    der = sslobj.getpeercert(binary_form=True)
    if not der:
        return None
    return sslobj.getpeercert(), hashlib.sha256(der).hexdigest()


PLAIN_HTTP_REFUSAL = raw_refusal(
    "400 Bad Request",
    "TLS_REQUIRED",
    "This port speaks HTTPS: the request was sent as plain HTTP.",
)
TLS_HANDSHAKE = 0x16  # the first byte of every TLS record carrying a handshake (ClientHello)
FIRST_BYTE_TIMEOUT = 60.0  # as long as asyncio gives a whole handshake


class Sniffer(asyncio.Protocol):
    """A connection to a TLS listener until its first bytes say whether it speaks TLS.

    TLS: the connection gets the same SSL protocol ``loop.create_server(ssl=…)`` would have given
    it (uvloop's when uvloop runs the loop, asyncio's otherwise), with the bytes already read fed
    to it before its handshake starts, and the real protocol behind it. Anything else: a 400.
    """

    def __init__(
        self, make_protocol: Callable[[], asyncio.BaseProtocol], context: ssl.SSLContext
    ) -> None:
        self.make_protocol = make_protocol
        self.context = context
        self.loop = asyncio.get_running_loop()
        self.decided = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have the same methods.
        self.transport: Any = transport
        self.timer = self.loop.call_later(FIRST_BYTE_TIMEOUT, transport.close)

    def data_received(self, data: bytes) -> None:
        if self.decided:
            return  # after a plain-HTTP refusal: read and dropped
        self.decided = True
        self.timer.cancel()
        if data[0] == TLS_HANDSHAKE:
            self._start_tls(data)
            return
        log.info(
            "plain HTTP sent to the TLS listener from %s: answered 400",
            self.transport.get_extra_info("peername"),
        )
        # Keep reading (and dropping) what the client sends so close() sends no RST over the answer.
        self.transport.write(PLAIN_HTTP_REFUSAL)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(2.0, self.transport.close)

    def _start_tls(self, first: bytes) -> None:
        protocol_class: Any = asyncio.sslproto.SSLProtocol
        if type(self.loop).__module__.startswith("uvloop"):
            import uvloop.loop

            protocol_class = uvloop.loop.SSLProtocol  # type: ignore[attr-defined]
        tls = protocol_class(
            self.loop,
            self.make_protocol(),
            self.context,
            None,
            server_side=True,
            call_connection_made=True,
        )
        self.transport.set_protocol(tls)
        # Into the TLS layer's incoming buffer before its handshake starts: connection_made then
        # reads the ClientHello from there, exactly as if the layer had read it itself.
        view = memoryview(first)
        while view:
            buf = tls.get_buffer(len(view))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            tls.buffer_updated(n)
            view = view[n:]
        tls.connection_made(self.transport)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()

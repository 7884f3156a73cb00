"""TLS contexts: the listeners' (with certificates that reload in place) and the upstreams'.

A listener's :class:`ssl.SSLContext` is fixed when its socket starts serving, so a reloaded
certificate cannot be put into it. :class:`ServerCerts` instead keeps the *current* context and
gives the listener the first one with an ``sni_callback`` that, during each new handshake, moves
the connection onto whatever context is current (OpenSSL's ``SSL_set_SSL_CTX``, which is what
``SSLSocket.context = …`` does). A reload builds a complete fresh context with
``load_cert_chain``; only when that succeeds is it made current, so a missing file or a
certificate and key that do not match are refused with an error naming the files while the old
certificate keeps serving. Connections already established keep the context they shook hands with.

Client certificates (``client_auth``) are verified by OpenSSL during the handshake against
``client_ca_file``, expiry included: Python's ``ssl`` module cannot request a certificate without
verifying it, so an untrusted or expired one fails the handshake (alert ``unknown_ca`` /
``certificate_expired``) and never reaches the pipeline.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
from collections.abc import Iterable
from typing import Any

from gateway.config import ServerTLS, UpstreamTLS

__all__ = ["ServerCerts", "TLSFileError", "peer_certificate", "upstream_context"]

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

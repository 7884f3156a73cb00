"""Real certificates for TLS tests, made by ``trustme``: a CA, server and client certificates as
PEM files in a test's temporary directory, and client contexts that trust (or present) them."""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass
class Pem:
    cert: Path
    key: Path


class Certs:
    """One CA and the files it issued, under ``root``."""

    def __init__(self, root: Path, name: str = "ca") -> None:
        self.root = root
        self.name = name
        self.ca = trustme.CA(organization_name=f"test {name}")
        self.ca_file = root / f"{name}.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self._n = 0

    def _write(self, issued: trustme.LeafCert, stem: str) -> Pem:
        pem = Pem(self.root / f"{stem}.crt", self.root / f"{stem}.key")
        issued.private_key_pem.write_to_path(str(pem.key))
        # Leaf first, then the chain: what a server presents.
        pem.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        return pem

    def server(self, *hosts: str, stem: str | None = None) -> Pem:
        self._n += 1
        issued = self.ca.issue_cert(*(hosts or ("127.0.0.1", "localhost")))
        return self._write(issued, stem or f"{self.name}-server{self._n}")

    def client(
        self,
        common_name: str,
        *sans: str,
        not_after: datetime.datetime | None = None,
        stem: str | None = None,
        organization: str = "Example",
        unit: str = "Clients",
    ) -> Pem:
        """A client certificate with subject ``CN=<common_name>,OU=<unit>,O=<organization>``."""
        self._n += 1
        issued = self.ca.issue_cert(
            *(sans or (f"{common_name}@clients.test",)),
            common_name=common_name,
            organization_name=organization,
            organization_unit_name=unit,
            not_before=not_after - datetime.timedelta(days=30) if not_after else None,
            not_after=not_after,
        )
        return self._write(issued, stem or f"{self.name}-client{self._n}")

    def client_context(self, present: Pem | None = None) -> ssl.SSLContext:
        """A client context trusting this CA, presenting ``present`` when given."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if present is not None:
            ctx.load_cert_chain(str(present.cert), str(present.key))
        return ctx

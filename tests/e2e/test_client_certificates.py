"""Client certificates as a credential (issue 22): real mTLS handshakes with ``trustme`` certs.

A certificate verified by the listener maps (by fingerprint, SAN or subject) to a stored credential
with scopes and a workspace, revocable like any token; a route may require it alongside a bearer.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import socket
import ssl
import time
from pathlib import Path

import aiohttp
import pytest

from gateway.store.base import TokenRecord
from tests.conftest import GatewayFactory
from tests.support.certs import Certs, Pem
from tests.support.harness import RunningGateway, Upstream
from tests.support.served import cli

CONFIG = """
store: "{store}"
listeners:
  proxy:
    address: "127.0.0.1:0"
    tls: {cert_file: "{cert}", key_file: "{key}", client_ca_file: "{client_ca}",
          client_auth: optional}
token_types:
  - {name: live, prefix: gw_live_, kind: api_key, environment: live}
  - {name: cert, prefix: mtls_, kind: api_key, environment: live, client_certificate: true}
workspace: {source: token}
upstreams:
  api: {url: "{up}"}
cache: {poll_interval: 0.1, usage_flush_interval: 0.2}
scopes:
  known: [items:read]
routes:
  - {name: items, path: /api/**, scopes: [items:read]}
  - {name: both, path: /both/**, scopes: [items:read], require_client_certificate: true}
  - {name: certonly, path: /certonly/**, scopes: [items:read], auth_methods: [certificate]}
"""


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.server_ca = Certs(tmp, "server-ca")
        self.clients = Certs(tmp, "client-ca")
        self.server = self.server_ca.server()

    def context(self, present: Pem | None = None) -> ssl.SSLContext:
        ctx = self.server_ca.client_context()
        if present is not None:
            ctx.load_cert_chain(str(present.cert), str(present.key))
        return ctx


def fingerprint(pem: Pem) -> str:
    first = pem.cert.read_text().split("-----END CERTIFICATE-----")[0]
    der = ssl.PEM_cert_to_DER_cert(first + "-----END CERTIFICATE-----\n")
    return hashlib.sha256(der).hexdigest()


async def start(make_gateway: GatewayFactory, up: Upstream, s: Setup) -> RunningGateway:
    gw = await make_gateway(
        CONFIG,
        up=up.url,
        cert=s.server.cert,
        key=s.server.key,
        client_ca=s.clients.ca_file,
    )
    await gw.services.create_workspace("Acme", "acme")
    await gw.services.create_workspace("Other", "other")
    return gw


async def register(gw: RunningGateway, workspace: str, name: str, key: str) -> TokenRecord:
    """A certificate credential with items:read, mapped from ``key``."""
    record, _ = await gw.services.create_token(
        workspace=workspace, name=name, scopes=["items:read"], type="cert", certificate_key=key
    )
    return record


async def get(
    gw: RunningGateway, path: str, ctx: ssl.SSLContext, token: str | None = None
) -> tuple[int, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, force_close=True)) as s,
        s.get(f"{gw.url}{path}", headers=headers) as r,
    ):
        body = await r.json()
        return r.status, body.get("error", {}) if r.status >= 400 else {}


async def test_certificate_alone_authenticates_with_identity_headers(
    make_gateway: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    s = Setup(tmp_path)
    gw = await start(make_gateway, upstream, s)
    by_san = s.clients.client("svc-a", "svc-a.internal")
    by_subject = s.clients.client("svc-b", "svc-b.internal")
    by_print = s.clients.client("svc-c", "svc-c.internal")
    unknown = s.clients.client("svc-d", "svc-d.internal")
    a = await register(gw, "acme", "a", "san:DNS:svc-a.internal")
    b = await register(gw, "acme", "b", "subject:CN=svc-b,OU=Clients,O=Example")
    c = await register(gw, "other", "c", f"sha256:{fingerprint(by_print)}")
    for pem, record, slug in ((by_san, a, "acme"), (by_subject, b, "acme"), (by_print, c, "other")):
        status, _ = await get(gw, "/api/items", s.context(pem))
        assert status == 200, pem
        seen = upstream.last
        assert seen.header("X-Gateway-Token-Id") == record.id
        assert seen.header("X-Gateway-Workspace-Slug") == slug
        assert seen.header("X-Gateway-Auth-Method") == "certificate"
        assert seen.header("X-Gateway-Scopes") == "items:read"
    status, err = await get(gw, "/api/items", s.context(unknown))
    assert status == 401
    assert "not a registered credential" in err["message"]
    status, _ = await get(gw, "/api/items", s.context())  # no certificate, no credential
    assert status == 401


async def test_the_public_key_string_is_not_a_bearer_token(
    make_gateway: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    s = Setup(tmp_path)
    gw = await start(make_gateway, upstream, s)
    await register(gw, "acme", "a", "san:DNS:svc-a.internal")
    key = "mtls_san:DNS:svc-a.internal"  # what is hashed and stored: public, so never a bearer
    status, _ = await get(gw, "/api/items", s.context(), token=key)
    assert status == 401
    assert not upstream.seen


async def test_expired_or_wrong_ca_certificate_is_refused_in_the_handshake(
    make_gateway: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    s = Setup(tmp_path)
    gw = await start(make_gateway, upstream, s)
    stranger = Certs(tmp_path, "stranger-ca").client("svc-a", "svc-a.internal")
    now = datetime.datetime.now(datetime.UTC)
    expired = s.clients.client(
        "svc-a", "svc-a.internal", not_after=now - datetime.timedelta(days=1)
    )
    await register(gw, "acme", "a", "san:DNS:svc-a.internal")

    valid = s.clients.client("svc-a", "svc-a.internal")

    def answer(pem: Pem) -> bytes:
        # TLS 1.3 sends the client's certificate after the client considers the handshake done,
        # so a refusal shows on the first read: the connection ends without an HTTP answer.
        with (
            socket.create_connection(("127.0.0.1", gw.proxy_port), timeout=5) as raw,
            s.context(pem).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"GET /api/items HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            try:
                return tls.recv(1024)
            except (ssl.SSLError, ConnectionError):
                return b""

    assert (await asyncio.to_thread(answer, valid)).startswith(b"HTTP/1.1 200")
    assert await asyncio.to_thread(answer, stranger) == b""
    assert await asyncio.to_thread(answer, expired) == b""
    seen = len(upstream.seen)
    for pem in (stranger, expired):  # aiohttp sees the connection end without an answer
        with pytest.raises(aiohttp.ClientError):
            await get(gw, "/api/items", s.context(pem))
    assert len(upstream.seen) == seen == 1


async def test_revoked_certificate_refused_within_a_second(
    make_gateway: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    s = Setup(tmp_path)
    gw = await start(make_gateway, upstream, s)
    pem = s.clients.client("svc-a", "svc-a.internal")
    await register(gw, "acme", "a", f"sha256:{fingerprint(pem)}")
    # A SAN registration in the same workspace does not rescue the revoked fingerprint.
    await register(gw, "acme", "a-san", "san:DNS:svc-a.internal")
    ctx = s.context(pem)
    assert (await get(gw, "/api/items", ctx))[0] == 200  # now cached
    await gw.services.revoke_certificate(
        ":".join(fingerprint(pem)[i : i + 2] for i in range(0, 64, 2))
    )
    started = time.monotonic()
    while (await get(gw, "/api/items", ctx))[0] != 401:
        assert time.monotonic() - started < 1.0, "revocation not in force within a second"
        await asyncio.sleep(0.02)
    status, err = await get(gw, "/api/items", ctx)
    assert status == 401 and "revoked" in err["message"]


async def test_route_requiring_both_certificate_and_bearer(
    make_gateway: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    s = Setup(tmp_path)
    gw = await start(make_gateway, upstream, s)
    pem = s.clients.client("svc-a", "svc-a.internal")
    other_pem = s.clients.client("svc-o", "svc-o.internal")
    await register(gw, "acme", "a", "san:DNS:svc-a.internal")
    await register(gw, "other", "o", "san:DNS:svc-o.internal")
    bearer, token = await gw.services.create_token(
        workspace="acme", name="t", scopes=["items:read"], type="live"
    )
    assert (await get(gw, "/both/x", s.context(pem), token))[0] == 200
    assert upstream.last.header("X-Gateway-Token-Id") == bearer.id  # the bearer decides identity
    assert upstream.last.header("X-Gateway-Auth-Method") == "token"
    n = len(upstream.seen)
    assert (await get(gw, "/both/x", s.context(), token))[0] == 401  # bearer alone
    assert (await get(gw, "/both/x", s.context(pem)))[0] == 401  # certificate alone
    assert (await get(gw, "/both/x", s.context(other_pem), token))[0] == 401  # other workspace
    assert len(upstream.seen) == n
    # auth_methods: [certificate] takes the certificate and refuses the bearer.
    assert (await get(gw, "/certonly/x", s.context(pem)))[0] == 200
    assert (await get(gw, "/certonly/x", s.context(), token))[0] == 401


async def test_cli_registers_a_certificate_file_and_revokes_it_by_fingerprint(
    make_gateway: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    s = Setup(tmp_path)
    gw = await start(make_gateway, upstream, s)
    pem = s.clients.client("svc-a", "svc-a.internal")
    created = await asyncio.to_thread(
        cli, gw.config_path, "token", "create", "--workspace", "acme", "--name", "svc-a",
        "--type", "cert", "--scope", "items:read", "--certificate-file", str(pem.cert),
    )  # fmt: skip
    assert created["token"] == f"mtls_sha256:{fingerprint(pem)}"
    assert (await get(gw, "/api/items", s.context(pem)))[0] == 200
    assert upstream.last.header("X-Gateway-Token-Id") == created["id"]
    colons = ":".join(fingerprint(pem)[i : i + 2] for i in range(0, 64, 2)).upper()
    revoked = await asyncio.to_thread(cli, gw.config_path, "token", "revoke-certificate", colons)
    assert revoked["id"] == created["id"] and revoked["status"] == "revoked"
    started = time.monotonic()
    while (await get(gw, "/api/items", s.context(pem)))[0] != 401:
        assert time.monotonic() - started < 1.0
        await asyncio.sleep(0.02)

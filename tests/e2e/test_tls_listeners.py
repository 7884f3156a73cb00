"""TLS on the listeners (issue 22): real handshakes against the gateway's proxy port.

Certificates come from ``trustme``; clients are aiohttp, Python's ``ssl`` and ``openssl s_client``.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from gateway import config as config_mod
from tests.conftest import GatewayFactory
from tests.support.certs import Certs, Pem
from tests.support.harness import RunningGateway, Upstream, write_config
from tests.support.require import binary_or_skip
from tests.support.served import Served, free_port

TLS_CONFIG = """
store: "{store}"
listeners:
  proxy:
    address: "127.0.0.1:0"
    tls: {cert_file: "{cert}", key_file: "{key}"}
token_types:
  - {name: live, prefix: gw_live_, kind: api_key, environment: live}
upstreams:
  api: {url: "{up}"}
routes:
  - {name: public, path: /public/**, public: true}
"""


@dataclass
class TLSGateway:
    gw: RunningGateway
    certs: Certs
    pem: Pem  # the certificate it serves, at the paths its config names


@pytest.fixture
async def tls_gateway(
    make_gateway: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> TLSGateway:
    certs = Certs(tmp_path)
    pem = certs.server()
    gw = await make_gateway(TLS_CONFIG, up=upstream.url, cert=pem.cert, key=pem.key)
    return TLSGateway(gw, certs, pem)


def served_cert(port: int, ca: Path) -> bytes:
    """The DER certificate a new TLS connection to ``port`` is shown."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def der_of(pem: Path) -> bytes:
    first = pem.read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    return ssl.PEM_cert_to_DER_cert(first)


async def test_https_listener_forwards_and_says_https(
    tls_gateway: TLSGateway, upstream: Upstream
) -> None:
    gw, certs = tls_gateway.gw, tls_gateway.certs
    assert gw.url.startswith("https://")
    conn = aiohttp.TCPConnector(ssl=certs.client_context())
    async with aiohttp.ClientSession(connector=conn) as s, s.get(f"{gw.url}/public/x") as r:
        assert r.status == 200
    assert upstream.last.header("X-Forwarded-Proto") == "https"


async def test_tls_1_0_and_1_1_refused_1_2_and_1_3_accepted(tls_gateway: TLSGateway) -> None:
    binary_or_skip("openssl", "openssl")
    gw, certs = tls_gateway.gw, tls_gateway.certs

    def handshake(flag: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            # @SECLEVEL=0 lets the *client* offer the old versions; the gateway must still refuse.
            ["openssl", "s_client", "-connect", f"127.0.0.1:{gw.proxy_port}", flag,
             "-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile", str(certs.ca_file)],
            input="", capture_output=True, text=True, timeout=10,
        )  # fmt: skip

    for old in ("-tls1", "-tls1_1"):
        out = await asyncio.to_thread(handshake, old)
        assert out.returncode != 0, out.stdout
        assert "Cipher is (NONE)" in out.stdout or "alert" in out.stderr, out.stderr
    for ok, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        out = await asyncio.to_thread(handshake, ok)
        assert out.returncode == 0, out.stderr
        assert f"Protocol  : {version}" in out.stdout or f"New, {version}" in out.stdout


async def test_certificate_reload_under_load_fails_no_request(
    tls_gateway: TLSGateway, upstream: Upstream
) -> None:
    gw, certs, first = tls_gateway.gw, tls_gateway.certs, tls_gateway.pem
    assert gw.certs is not None
    ctx = certs.client_context()
    failures: list[BaseException] = []
    done = 0
    stop = asyncio.Event()

    async def client(force_close: bool) -> None:
        nonlocal done
        conn = aiohttp.TCPConnector(ssl=ctx, force_close=force_close)
        async with aiohttp.ClientSession(connector=conn) as s:
            while not stop.is_set():
                try:
                    async with s.get(f"{gw.url}/public/k") as r:
                        assert r.status == 200
                        await r.read()
                    done += 1
                except (aiohttp.ClientError, AssertionError) as exc:
                    failures.append(exc)

    # Keep-alive clients (on the old certificate throughout) and new-connection ones (a handshake
    # per request, so they cross over to the new certificate mid-load).
    clients = [asyncio.create_task(client(force_close=n % 2 == 1)) for n in range(6)]
    try:
        await asyncio.sleep(0.3)  # load running before the swap (duration of load, not a race)
        # The new pair is written over the same paths, as a certificate renewal does.
        second = certs.server(stem="renewed")
        first.cert.write_bytes(second.cert.read_bytes())
        first.key.write_bytes(second.key.read_bytes())
        assert gw.certs.reload("test")
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.gather(*clients)
    assert not failures, failures[:3]
    assert done > 20
    served = await asyncio.to_thread(served_cert, gw.proxy_port, certs.ca_file)
    assert served == der_of(second.cert)


async def test_mismatched_pair_refused_old_certificate_keeps_serving(
    tls_gateway: TLSGateway, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    gw, certs, pem = tls_gateway.gw, tls_gateway.certs, tls_gateway.pem
    assert gw.certs is not None
    other = certs.server()
    pem.key.write_bytes(other.key.read_bytes())  # a key that does not belong to the certificate
    assert not gw.certs.reload("test")
    assert str(pem.cert) in caplog.text and "old certificate keeps serving" in caplog.text
    served = await asyncio.to_thread(served_cert, gw.proxy_port, certs.ca_file)
    assert served == der_of(pem.cert)


async def test_config_names_a_missing_certificate_file(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        TLS_CONFIG,
        store="sqlite:///x.db",
        up="http://127.0.0.1:1",
        cert=tmp_path / "nope.crt",
        key=tmp_path / "nope.key",
    )
    with pytest.raises(config_mod.ConfigError) as err:
        config_mod.load(path)
    assert "listeners.proxy.tls.cert_file: is not a readable file" in str(err.value)
    assert "nope.crt" in str(err.value)


async def test_plain_http_to_tls_port_fails_fast(
    tls_gateway: TLSGateway, upstream: Upstream
) -> None:
    gw = tls_gateway.gw
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.proxy_port)
    writer.write(b"GET /public/x HTTP/1.1\r\nHost: x\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)  # answered and closed, not left hanging
    writer.close()
    assert time.monotonic() - started < 2
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b'"TLS_REQUIRED"' in data and b"speaks HTTPS" in data
    assert not upstream.seen


async def test_tls_to_plain_port_fails_fast(
    make_gateway: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    from tests.support.core_config import CORE

    gw = await make_gateway(CORE, up=upstream.url, sandbox=upstream.url, timeout=5, trusted="")
    ctx = Certs(tmp_path).client_context()
    started = time.monotonic()
    with pytest.raises(aiohttp.ClientError) as err:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s,
            s.get(f"https://127.0.0.1:{gw.proxy_port}/public/x") as r,
        ):
            await r.read()
    assert time.monotonic() - started < 2
    assert "WRONG_VERSION_NUMBER" in str(err.value) or "wrong version" in str(err.value)


async def test_served_process_reloads_certificate_when_files_change(tmp_path: Path) -> None:
    up = Upstream()
    await up.start()
    certs = Certs(tmp_path)
    pem = certs.server()
    port, admin = free_port(), free_port()
    admin_listener = (
        f'  admin: {{address: "127.0.0.1:{admin}", tls: {{cert_file: "{pem.cert}", '
        f'key_file: "{pem.key}"}}}}\n'
    )
    cfg = write_config(
        tmp_path,
        TLS_CONFIG.replace("127.0.0.1:0", f"127.0.0.1:{port}").replace(
            "token_types:", admin_listener + "token_types:"
        ),
        store=f"sqlite:///{tmp_path}/gw.db",
        up=up.url,
        cert=pem.cert,
        key=pem.key,
    )
    served = Served(cfg, port)
    try:
        await served.start()
        deadline = time.monotonic() + 10
        while "listening on https://" not in served.log_text():  # printed just after the bind
            assert time.monotonic() < deadline, served.log_text()
            await asyncio.sleep(0.05)
        assert await asyncio.to_thread(served_cert, port, certs.ca_file) == der_of(pem.cert)
        # The admin listener serves https too, with its own certificate holder.
        conn = aiohttp.TCPConnector(ssl=certs.client_context())
        async with (
            aiohttp.ClientSession(connector=conn) as s,
            s.get(f"https://127.0.0.1:{admin}/healthz") as r,
        ):
            assert r.status == 200
        # Under `serve` the loop is uvloop's: plain HTTP still gets its answer there.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /public/x HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 400 ")
        writer.close()
        renewed = certs.server(stem="renewed")
        pem.key.write_bytes(renewed.key.read_bytes())
        pem.cert.write_bytes(renewed.cert.read_bytes())
        deadline = time.monotonic() + 10
        while await asyncio.to_thread(served_cert, port, certs.ca_file) != der_of(renewed.cert):
            assert time.monotonic() < deadline, served.log_text()
            await asyncio.sleep(0.1)
        # A broken key on disk (and SIGHUP): refused with the file named, old cert keeps serving.
        pem.key.write_text("not a key")
        served.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "old certificate keeps serving" not in served.log_text():
            assert time.monotonic() < deadline, served.log_text()
            await asyncio.sleep(0.1)
        assert str(pem.key) in served.log_text()
        assert await asyncio.to_thread(served_cert, port, certs.ca_file) == der_of(renewed.cert)
    finally:
        served.kill()
        await up.stop()

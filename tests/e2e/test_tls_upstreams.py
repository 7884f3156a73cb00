"""TLS to upstreams (issue 22): an https upstream on a loopback port with a ``trustme`` certificate.

Both exchanges are covered: bodiless requests go over the pooled path (gateway/forward/upstream.py), requests
with a body over ClientSession.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from gateway.features.metricbatch import publish
from tests.conftest import GatewayFactory
from tests.support.certs import Certs
from tests.support.harness import Upstream, write_config
from tests.support.served import cli

CONFIG = """
store: "{store}"
token_types:
  - {name: live, prefix: gw_live_, kind: api_key, environment: live}
upstreams:
  api:
    url: "{up}"
    connect_timeout: 2
    timeout: 5
{tls}
routes:
  - {name: public, path: /public/**, public: true}
"""


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs(tmp_path, "upstream-ca")


async def _start(certs: Certs, *hosts: str, client_ca: Certs | None = None) -> Upstream:
    pem = certs.server(*hosts)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pem.cert), str(pem.key))
    if client_ca is not None:
        ctx.load_verify_locations(str(client_ca.ca_file))
        ctx.verify_mode = ssl.CERT_REQUIRED

    async def echo_ws(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(f"echo {msg.data}")
        return ws

    async def whoami(request: web.Request) -> web.Response:
        sslobj = request.transport.get_extra_info("ssl_object") if request.transport else None
        peer = sslobj.getpeercert() if sslobj is not None else None
        subject = dict(x[0] for x in peer["subject"]) if peer else {}
        return web.json_response({"client_cn": subject.get("commonName")})

    up = Upstream(
        ssl_context=ctx,
        extra_routes=[("GET", "/public/whoami", whoami), ("GET", "/public/ws", echo_ws)],
    )
    await up.start()
    return up


@pytest.fixture
async def tls_upstream(certs: Certs) -> AsyncIterator[Upstream]:
    up = await _start(certs)
    yield up
    await up.stop()


def tls_block(**keys: object) -> str:
    return "    tls: " + json.dumps(
        {k: str(v) if isinstance(v, Path) else v for k, v in keys.items()}
    )


async def test_self_signed_upstream_refused_with_upstream_tls(
    make_gateway: GatewayFactory,
    tls_upstream: Upstream,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw = await make_gateway(CONFIG, up=tls_upstream.url, tls="")
    labels = {"code": "UPSTREAM_UNAVAILABLE", "reason": "upstream_tls"}
    publish()  # counts made so far, in this process (gateway.features.metricbatch publishes per interval)
    before = REGISTRY.get_sample_value("gateway_denials_total", labels) or 0
    for method, body in (("GET", None), ("POST", b"x" * 10)):  # pooled path, ClientSession path
        async with http.request(method, f"{gw.url}/public/a", data=body) as r:
            assert r.status == 502
            assert r.headers.get("X-Request-Id")
        assert not tls_upstream.seen
    assert "upstream api (https://127.0.0.1:" in caplog.text
    assert "certificate verify failed" in caplog.text or "unable to get local issuer" in caplog.text
    logged = [rec for rec in caplog.records if "TLS handshake failed" in rec.getMessage()]
    assert len(logged) == 2
    # Its own reason id (not upstream_refused, which sends an operator looking for a closed port).
    publish()
    assert REGISTRY.get_sample_value("gateway_denials_total", labels) == before + 2


async def test_upstream_trusted_through_its_ca_file(
    make_gateway: GatewayFactory,
    tls_upstream: Upstream,
    certs: Certs,
    http: aiohttp.ClientSession,
) -> None:
    gw = await make_gateway(CONFIG, up=tls_upstream.url, tls=tls_block(ca_file=certs.ca_file))
    for _ in range(3):
        async with http.get(f"{gw.url}/public/a") as r:
            assert r.status == 200
    async with http.post(f"{gw.url}/public/b", data=b"body") as r:
        assert r.status == 200
    assert [s.method for s in tls_upstream.seen] == ["GET"] * 3 + ["POST"]
    assert tls_upstream.last.body == b"body"
    # The bodiless requests went over the pooled exchange and left one warm TLS connection.
    ctx, name = gw.gw.runtime.forwarder.tls["api"]
    pool = gw.gw.pools.get(tls_upstream.url, ctx, name)
    assert pool is not None and pool.idle_connections == 1


async def test_websocket_to_an_https_upstream_uses_its_ca(
    make_gateway: GatewayFactory,
    tls_upstream: Upstream,
    certs: Certs,
    http: aiohttp.ClientSession,
) -> None:
    gw = await make_gateway(CONFIG, up=tls_upstream.url, tls=tls_block(ca_file=certs.ca_file))
    async with http.ws_connect(f"{gw.url}/public/ws") as ws:
        await ws.send_str("hi")
        assert (await ws.receive_str()) == "echo hi"
    plain = await make_gateway(CONFIG, up=tls_upstream.url, tls="")  # CA not configured
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        async with http.ws_connect(f"{plain.url}/public/ws"):
            pass
    assert err.value.status == 502


async def test_server_name_sets_sni_and_the_checked_hostname(
    make_gateway: GatewayFactory, certs: Certs, http: aiohttp.ClientSession
) -> None:
    up = await _start(certs, "api.internal")  # a certificate that does not name 127.0.0.1
    try:
        wrong = await make_gateway(CONFIG, up=up.url, tls=tls_block(ca_file=certs.ca_file))
        async with http.get(f"{wrong.url}/public/a") as r:
            assert r.status == 502
        right = await make_gateway(
            CONFIG, up=up.url, tls=tls_block(ca_file=certs.ca_file, server_name="api.internal")
        )
        async with http.get(f"{right.url}/public/a") as r:
            assert r.status == 200
    finally:
        await up.stop()


async def test_client_certificate_presented_to_an_mtls_upstream(
    make_gateway: GatewayFactory, certs: Certs, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clients = Certs(tmp_path, "gateway-clients")
    mine = clients.client("gateway-1")
    up = await _start(certs, client_ca=clients)
    try:
        gw = await make_gateway(
            CONFIG,
            up=up.url,
            tls=tls_block(ca_file=certs.ca_file, cert_file=mine.cert, key_file=mine.key),
        )
        async with http.get(f"{gw.url}/public/whoami") as r:
            assert r.status == 200
            assert (await r.json())["client_cn"] == "gateway-1"
    finally:
        await up.stop()


async def test_verify_false_is_served_but_warned_about(
    make_gateway: GatewayFactory, tls_upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    gw = await make_gateway(CONFIG, up=tls_upstream.url, tls=tls_block(verify=False))
    async with http.get(f"{gw.url}/public/a") as r:
        assert r.status == 200
    warned = [w.render("x") for w in gw.config.warnings]
    assert any("upstreams.api.tls.verify: is false" in w for w in warned), warned
    out = cli(gw.config_path, "check")
    assert any("NOT verified" in w for w in out["warnings"])


async def test_tls_keys_on_a_plain_upstream_are_refused(tmp_path: Path) -> None:
    from gateway import config as config_mod

    path = write_config(
        tmp_path,
        CONFIG,
        store="sqlite:///x.db",
        up="http://127.0.0.1:1",
        tls=tls_block(verify=True),
    )
    with pytest.raises(config_mod.ConfigError, match=r"upstreams.api.tls: is set but no URL"):
        config_mod.load(path)

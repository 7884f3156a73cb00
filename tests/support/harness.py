"""Start real servers on 127.0.0.1 for tests: a recording upstream and the gateway itself.

Nothing here is mocked: the upstream is an aiohttp server on its own port that records what it
received, the gateway runs its real proxy and admin apps on their own ports over a real SQLite file,
and tests talk to it with a real HTTP client.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from gateway import config as config_mod
from gateway.app import Gateway
from gateway.config import Config
from gateway.edge.apps import create_admin_app, create_proxy_app
from gateway.edge.catchall import DirectRunner
from gateway.edge.listen import CappedSite, bind
from gateway.edge.tls import ServerCerts
from gateway.management.services import Services
from gateway.store import open_store


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v[0]
        return None

    def header_names(self) -> set[str]:
        return {k.lower() for k in self.headers}


@dataclass
class Upstream:
    """An upstream server that records each request and answers with JSON describing it."""

    name: str = "up"
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    runner: web.AppRunner | None = None
    extra_routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = (
        field(default_factory=list)
    )
    ssl_context: ssl.SSLContext | None = None  # serve https (issue 22)
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        async def echo(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            headers: dict[str, list[str]] = {}
            for k, v in request.headers.items():
                headers.setdefault(k, []).append(v)
            self.seen.append(Seen(request.method, request.raw_path, headers, body))
            return web.json_response(
                {"upstream": self.name, "method": request.method, "path": request.raw_path}
            )

        app = web.Application(client_max_size=2**31)
        for method, path, handler in self.extra_routes:
            app.router.add_route(method, path, handler)
        app.router.add_route("*", "/{tail:.*}", echo)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def last(self) -> Seen:
        return self.seen[-1]


@dataclass
class RunningGateway:
    config: Config
    gw: Gateway
    services: Services  # over its own store connection, as the CLI would be
    proxy_port: int
    admin_port: int
    runners: list[web.AppRunner]
    config_path: Path
    # The proxy listener's certificates when listeners.proxy.tls is set (reload them in tests).
    certs: ServerCerts | None = None
    stopped: bool = False  # a test may stop it early; the fixture's stop is then a no-op

    @property
    def url(self) -> str:
        return f"{self.config.proxy.scheme}://127.0.0.1:{self.proxy_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for r in reversed(self.runners):
            await r.cleanup()
        await self.gw.stop()
        await self.services.store.close()


def write_config(tmp: Path, text_or_doc: str | dict[str, Any], **subs: Any) -> Path:
    text = text_or_doc if isinstance(text_or_doc, str) else yaml.safe_dump(text_or_doc)
    text = textwrap.dedent(text)
    for k, v in subs.items():
        text = text.replace("{" + k + "}", str(v))
    path = tmp / "gateway.yaml"
    path.write_text(text)
    return path


async def start_gateway(config_path: Path) -> RunningGateway:
    cfg = config_mod.load(config_path)
    gw = Gateway(cfg)
    await gw.start()
    runners = []
    ports = []
    certs = ServerCerts(cfg.proxy.tls, "proxy") if cfg.proxy.tls is not None else None
    for app, ctx, runner in (
        (create_proxy_app(gw), certs.listening if certs else None, DirectRunner),
        (create_admin_app(gw), None, web.AppRunner),
    ):
        r = runner(app, access_log=None)
        await r.setup()
        # The proxy listens through the same capped site `gateway serve` uses.
        site = CappedSite(
            r,
            bind("127.0.0.1", 0, reuse_port=False),
            cfg.limits.max_connections,
            cfg.limits.max_header_bytes,
            ctx,
        )
        await site.start()
        runners.append(r)
        ports.append(site.port)
    store = open_store(cfg.store)
    await store.open()
    return RunningGateway(
        cfg, gw, Services(store, cfg), ports[0], ports[1], runners, config_path, certs
    )


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float, interval: float = 0.02
) -> float:
    """Poll ``check`` until it is true; return the seconds it took, fail after ``within``.

    Used only to assert a latency promise ("refused within a second"), never to wait out a race.
    """
    start = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


async def item_status(
    http: aiohttp.ClientSession, gw: RunningGateway, tok: str, path: str = "/api/items/1"
) -> int:
    """The status of GET ``path`` through ``gw`` with ``tok`` in workspace ``acme`` (CORE's routes)."""
    headers = {"Authorization": f"Bearer {tok}", "X-Workspace-Id": "acme"}
    async with http.get(f"{gw.url}{path}", headers=headers) as r:
        await r.read()
        return r.status


async def refused_within(
    http: aiohttp.ClientSession, gw: RunningGateway, tok: str, within: float
) -> float:
    """Seconds until ``tok`` is refused (401/403) by ``gw``; fails after ``within``."""

    async def refused() -> bool:
        return await item_status(http, gw, tok) in (401, 403)

    return await eventually(refused, within=within, interval=0.01)


async def answers(url: str) -> bool:
    """Whether a gateway at ``url`` answers ``/api/x`` with its 401 (no credential) right now."""
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{url}/api/x", timeout=aiohttp.ClientTimeout(total=1)) as r,
        ):
            return r.status == 401
    except (aiohttp.ClientError, TimeoutError):
        return False


async def wait_answering(url: str, within: float = 30) -> None:
    """Wait until a gateway started as a process answers (see :func:`answers`)."""
    await eventually(lambda: answers(url), within=within, interval=0.1)


def body_json(data: bytes) -> Any:
    return json.loads(data)

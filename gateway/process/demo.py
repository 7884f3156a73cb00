"""``gateway demo``: a working gateway in one command.

Starts a small echo upstream on loopback, opens the configured SQLite store, makes sure a demo
workspace, user and two tokens exist (minting fresh ones on every start, since plaintext is never
stored), prints them with ``curl`` lines to try and a sign-in link to the token dashboard, then
serves until Ctrl-C. Without a configured dashboard the demo turns one on for this run only, with
a random secret (sessions end with the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
from dataclasses import replace

from aiohttp import web

from gateway import config as config_mod
from gateway.app import Gateway
from gateway.config import Config, DashboardConfig, Listener
from gateway.core.errors import NotFound
from gateway.edge.apps import create_admin_app, create_proxy_app
from gateway.edge.catchall import DirectRunner
from gateway.edge.listen import ListenError, opening
from gateway.features.dashboard.signin import login_link
from gateway.management.services import Services
from gateway.store import open_store

__all__ = ["echo_app", "run_demo"]


def echo_app() -> web.Application:
    """An upstream that answers every request with what it received (minus nothing)."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "upstream": "demo",
                "method": request.method,
                "path": request.raw_path,
                "headers": {k: v for k, v in request.headers.items()},
                "body_bytes": len(body),
            }
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


DEMO_USER = "demo@example.com"


async def _seed(cfg: Config) -> tuple[str, str, str, str]:
    store = open_store(cfg.store)
    await store.open()
    svc = Services(store, cfg)
    try:
        try:
            ws = await svc.workspace("demo")
        except NotFound:
            ws = await svc.create_workspace("Demo", "demo")
        try:
            await svc.workspace("other")
        except NotFound:
            await svc.create_workspace("Other", "other")
        _, rw = await svc.create_token(
            workspace=ws.id, name="demo read-write", scopes=["items:write"]
        )
        _, ro = await svc.create_token(
            workspace=ws.id, name="demo read-only", scopes=["items:read"]
        )
        _, other = await svc.create_token(
            workspace="other", name="other workspace", scopes=["items:read"]
        )
        try:
            user = await svc.user(DEMO_USER)
        except NotFound:
            user = await svc.create_user(DEMO_USER, "Demo User")
            await svc.add_member(ws.id, DEMO_USER, _admin_role(cfg))
        link = ""
        if cfg.dashboard is not None:
            link, _ = login_link(cfg.dashboard, f"http://{cfg.proxy}", user, 3600)
        return rw, ro, other, link
    finally:
        await store.close()


async def _main(cfg: Config, upstream_port: int) -> None:
    runners: list[web.AppRunner] = []
    gw: Gateway | None = None
    try:
        # Every port first, so a taken one fails fast, before anything is seeded or started.
        up = web.AppRunner(echo_app(), access_log=None)
        await up.setup()
        runners.append(up)
        with opening("demo upstream", "127.0.0.1", upstream_port):
            await web.TCPSite(up, "127.0.0.1", upstream_port).start()
        rw, ro, other, link = await _seed(cfg)
        gw = Gateway(cfg)
        await gw.start()
        for name, app, listener in (
            ("proxy", create_proxy_app(gw), cfg.proxy),
            ("admin", create_admin_app(gw), cfg.admin),
        ):
            if listener is None:
                continue
            r = (DirectRunner if name == "proxy" else web.AppRunner)(app, access_log=None)
            await r.setup()
            runners.append(r)
            with opening(name, listener.host, listener.port):
                await web.TCPSite(r, listener.host, listener.port).start()
        _print_welcome(cfg, upstream_port, rw, ro, other, link)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        # On every path, a refused port included: a store left open keeps its thread (and so
        # the process) alive.
        for r in reversed(runners):
            await r.cleanup()
        if gw is not None:
            await gw.stop()


def _print_welcome(
    cfg: Config, upstream_port: int, rw: str, ro: str, other: str, link: str
) -> None:
    base = f"http://{cfg.proxy}"
    print(
        f"""
Gateway running on {base} in front of a demo upstream on 127.0.0.1:{upstream_port}.

A read-write token for workspace "demo" (shown once, stored only as a hash):
  {rw}
A read-only token for "demo", and a token of another workspace, "other", for the refusals below:
  {ro}
  {other}

Try it:
  curl -i {base}/api/v1/items/42 -H "Authorization: Bearer {rw}"          # 200, reaches the upstream
  curl -i {base}/api/v1/items/42                                             # 401 UNAUTHORIZED
  curl -i -X POST {base}/api/v1/items -H "Authorization: Bearer {ro}"       # 403 FORBIDDEN (read-only key)
  curl -i {base}/api/v1/items/42 -H "X-Workspace-Id: demo" -H "Authorization: Bearer {other}"  # 403 WORKSPACE_ACCESS_DENIED

The token dashboard (Settings -> API Keys), signed in as {DEMO_USER} (link works once, 1 h):
  {link}

Revoke from another terminal and the next call is refused within a second:
  .venv/bin/gateway --config {cfg.source} token list --workspace demo
  .venv/bin/gateway --config {cfg.source} token revoke <id>

Ctrl-C stops it.""",
        flush=True,
    )


def _admin_role(cfg: Config) -> str:
    """A role holding the superuser scope, else the one granting most (the demo user administers)."""
    su = cfg.scopes.superuser
    return max(cfg.roles, key=lambda r: (su in cfg.roles[r], len(cfg.roles[r])))


def run_demo(config_path: str, port: int | None, upstream_port: int) -> int:
    try:
        cfg = config_mod.load(config_path)
    except config_mod.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if port is not None:
        cfg = replace(cfg, proxy=Listener(cfg.proxy.host, port))
    # Every upstream of the config is the demo's own echo server, whatever port it was given.
    echo = f"http://127.0.0.1:{upstream_port}"
    cfg = replace(
        cfg,
        upstreams={
            name: replace(up, url=echo, environments=dict.fromkeys(up.environments, echo))
            for name, up in cfg.upstreams.items()
        },
    )
    if cfg.dashboard is None:
        # This run only: a random secret, so nothing guessable ever signs a session.
        cfg = replace(cfg, dashboard=DashboardConfig(secret=secrets.token_urlsafe(32)))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_main(cfg, upstream_port))
    except ListenError as exc:
        print(f"gateway: {exc} (choose another with --port / --upstream-port)", file=sys.stderr)
        return 1
    return 0

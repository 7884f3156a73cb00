"""Debian's nginx as a real process for tests, running config/nginx/auth_request.conf as shipped.

The shipped file's placeholders are filled exactly as envsubst would (bench/servers.py owns that and
the main-context boilerplate, which the benchmark uses too); nginx runs in the foreground on a free
127.0.0.1 port and is stopped, with its whole process group, when the test ends.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.servers import nginx_common, render_auth_request_conf
from tests.support.require import binary_or_skip
from tests.support.served import free_port


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    port: int
    dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def errors(self) -> str:
        log = self.dir / "authz.error.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


async def start_auth_request_nginx(
    tmp: Path, gateway_authz: str, app_upstream: str, *, cache: bool
) -> Nginx:
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
    with (d / "stderr.log").open("wb") as err:
        proc = subprocess.Popen(
            [binary, "-e", str(d / "stderr.log"), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    server = Nginx(proc, port, d)
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            err = (d / "stderr.log").read_text(errors="replace")
            raise AssertionError(f"nginx exited {proc.returncode}: {err}{server.errors()}")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(f"nginx did not listen: {server.errors()}") from None
            await asyncio.sleep(0.05)

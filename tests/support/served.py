"""`gateway serve` as a real process, for tests about signals, restarts and the process itself.

Everything binds 127.0.0.1; every wait is bounded; the process is killed at the end whatever
happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

# The one free_port, shared with the bench (bench/procs.py); re-exported for the tests.
from bench.procs import free_port as free_port


def stop_session(proc: subprocess.Popen[bytes], grace: float = 15) -> int | None:
    """SIGTERM a gateway started in its own session (supervisor and workers alike); SIGKILL what
    is still there after ``grace`` seconds. Returns the exit status (negative: killed)."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode


def cli(cfg: Path, *args: str) -> Any:
    """Run the gateway CLI with ``--json`` and return what it printed."""
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(cfg), "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


class Served:
    """One `gateway serve` process; its stderr is collected by a thread (see :meth:`log_text`).

    A pipe rather than a file, so the log keeps flowing even when a test forbids the process to
    write files.
    """

    def __init__(self, cfg: Path, port: int, *extra: str) -> None:
        self.cfg = cfg
        self.port = port
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, **popen: Any) -> Served:
        self.spawn(**popen)
        await self.wait_listening()
        return self

    def spawn(self, **popen: Any) -> subprocess.Popen[bytes]:
        """Start the process and return at once (:meth:`start` also waits for the port)."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(self.cfg), "serve", *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "GATEWAY_LOG_LEVEL": "INFO"},
            **popen,
        )
        threading.Thread(target=self._collect, args=(self.proc,), daemon=True).start()
        return self.proc

    async def wait_listening(self, within: float = 20.0, port: int | None = None) -> None:
        """Until ``port`` (default: the proxy port) accepts connections."""
        port = port or self.port
        deadline = time.monotonic() + within
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited {self.proc.returncode}: {self.log_text()}")
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"gateway did not listen: {self.log_text()}") from None
                await asyncio.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, within: float = 20.0) -> int:
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, within)

    def _collect(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        with proc.stderr:
            for line in proc.stderr:
                self.lines.append(line.decode(errors="replace"))

    def log_text(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

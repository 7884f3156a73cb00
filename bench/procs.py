"""Processes the benchmark starts: launch, readiness, CPU and RSS accounting, and certain cleanup.

Every process is started in its own session (process group) and registered with a
:class:`Processes` stack; leaving the ``with`` block — normally, on an exception, on Ctrl-C or on
SIGTERM — sends SIGTERM to every group, then SIGKILL to whatever is still alive after a grace period.
An exit that runs no ``finally`` (SIGKILL, a crashed interpreter) is covered by
:mod:`bench.watchdog`, a process of its own that stops every group still running once the
benchmark is gone.
CPU and RSS are read from ``/proc/<pid>/stat`` and ``/proc/<pid>/status`` for a server's whole
process tree (nginx master + workers, gateway supervisor + workers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "CLK_TCK",
    "PAGE",
    "Processes",
    "cpu_seconds",
    "free_port",
    "process_tree",
    "rss_bytes",
    "wait_for",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (closed again, so the server can bind it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parens: fields start after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    kids = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of ``pids`` (utime + stime from /proc/<pid>/stat), in seconds."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14 and 15)
    return ticks / CLK_TCK


def rss_bytes(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * PAGE


def wait_for(check: object, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``check()`` until true; raise with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if check():  # type: ignore[operator]
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Processes:
    """A stack of started processes that are all stopped when the block exits, however it exits."""

    def __init__(self, grace: float = 10.0) -> None:
        self.grace = grace
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._old_term: object = None
        self._watchdog: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Processes:
        # SIGTERM behaves like Ctrl-C: unwind through the finally blocks and stop everything.
        def on_term(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        self._old_term = signal.signal(signal.SIGTERM, on_term)
        # Its own session, so a Ctrl-C or a group kill aimed at the benchmark does not reach it.
        self._watchdog = subprocess.Popen(
            [sys.executable, "-m", "bench.watchdog"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[1],
            start_new_session=True,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Ignore further Ctrl-C while cleaning up, so cleanup itself cannot be interrupted.
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.stop_all()
            self._close_watchdog()
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, self._old_term)  # type: ignore[arg-type]

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpus: str | None = None,
        env: dict[str, str] | None = None,
        stdout: Path | None = None,
        stderr: Path | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        if cpus is not None:
            argv = ["taskset", "-c", cpus, *argv]
        with contextlib.ExitStack() as files:
            out = files.enter_context(stdout.open("wb")) if stdout else subprocess.DEVNULL
            err = files.enter_context(stderr.open("wb")) if stderr else subprocess.DEVNULL
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        self.procs.append((name, proc))
        self._tell_watchdog(f"+{proc.pid}")
        return proc

    def _tell_watchdog(self, line: str) -> None:
        dog = self._watchdog
        if dog is not None and dog.stdin is not None:
            dog.stdin.write(line.encode() + b"\n")
            dog.stdin.flush()

    def _close_watchdog(self) -> None:
        """Every group is stopped: end the watchdog's input, and it exits with nothing to do."""
        dog, self._watchdog = self._watchdog, None
        if dog is None:
            return
        if dog.stdin is not None:
            dog.stdin.close()
        try:
            dog.wait(timeout=10)
        except subprocess.TimeoutExpired:
            dog.kill()
            dog.wait()

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        for entry in list(self.procs):
            if entry[1] is proc:
                self.procs.remove(entry)
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
        # The group may hold children that outlived their parent (e.g. nginx workers).
        _signal_group(proc, signal.SIGKILL)
        self._tell_watchdog(f"-{proc.pid}")

    def stop_all(self) -> None:
        procs = [p for _, p in reversed(self.procs)]
        self.procs.clear()
        for p in procs:
            _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        for p in procs:
            _signal_group(p, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)

    def __iter__(self) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
        return iter(self.procs)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)

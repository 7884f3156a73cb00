"""Sampling profile of one gateway worker under wrk load (py-spy), reduced to its top frames.

py-spy is a developer tool, not a project dependency: ``.venv/bin/pip install py-spy``. It samples
the worker from outside (``--nonblocking``: the worker is never paused), so the profile shows where
a worker spends its time under the same load the benchmark measures.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

__all__ = ["py_spy", "record", "top_frames"]


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def record(pid: int, seconds: int, out: Path, rate: int = 250) -> subprocess.Popen[bytes]:
    """Start ``py-spy record`` (collapsed stacks) on ``pid``; the caller waits for it."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    return subprocess.Popen(
        [
            exe,
            "record",
            "--nonblocking",
            "--format",
            "raw",
            "--rate",
            str(rate),
            "--duration",
            str(seconds),
            "--pid",
            str(pid),
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _short(frame: str) -> str:
    # "handle (gateway/app.py:140)" -> "handle (gateway/app.py:140)" with site-packages trimmed.
    return frame.replace("/site-packages/", "/").split("/lib/python3.11/")[-1]


def top_frames(collapsed: str, n: int = 20) -> dict[str, list[tuple[str, float]]]:
    """Top ``n`` frames by self time and by inclusive time, as shares of all samples."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        frames = [_short(f) for f in stack.split(";")]
        # Only the event-loop thread serves requests; other threads (aiosqlite's worker, idle
        # on its queue almost always) would only dilute the shares.
        if not any(f.startswith("Runner.run (asyncio/runners.py") for f in frames):
            continue
        total += c
        own[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    if not total:
        return {"self": [], "inclusive": []}
    return {
        "self": [(f, c / total) for f, c in own.most_common(n)],
        "inclusive": [(f, c / total) for f, c in incl.most_common(n)],
    }

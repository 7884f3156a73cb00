"""The benchmark's dead-man switch: stops every process group the benchmark started once the
benchmark itself is gone, however it went (SIGKILL and a crashed interpreter included).

:class:`bench.procs.Processes` starts one watchdog per sitting in a session of its own and keeps the
write end of a pipe to its standard input. Each server group is announced as ``+PGID`` when it
starts and ``-PGID`` when it has been stopped normally. When the pipe reaches end-of-file, which the
kernel delivers when the benchmark's last copy of the write end closes, the watchdog sends SIGTERM
to every group still announced, SIGKILL after a grace period, and exits.

Why a process and not ``PR_SET_PDEATHSIG``: the death signal reaches only a direct child, and only
when the thread that forked it dies; nginx workers and the gateway's worker processes are
grandchildren that would be reparented to PID 1 and keep their ports. Killing whole process groups
reaches them all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

GRACE_SECONDS = 5.0


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_all(groups: set[int], sig: int) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def main() -> None:
    # Interrupts meant for the benchmark (Ctrl-C in its terminal) must not stop the watchdog first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        line = line.strip()
        if line[:1] == "+" and line[1:].isdigit():
            groups.add(int(line[1:]))
        elif line[:1] == "-" and line[1:].isdigit():
            groups.discard(int(line[1:]))
    # End of file: the benchmark has exited (or closed the pipe after stopping everything).
    groups = {g for g in groups if _alive(g)}
    if not groups:
        return
    _signal_all(groups, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while groups and time.monotonic() < deadline:
        time.sleep(0.05)
        groups = {g for g in groups if _alive(g)}
    _signal_all(groups, signal.SIGKILL)


if __name__ == "__main__":
    main()

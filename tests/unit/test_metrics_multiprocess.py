"""Multiprocess metrics keep every process's counts: the cached pid still notices a fork.

``gateway.features.metrics`` caches the pid that prometheus-client's multiprocess values use to pick their
file. A process forked after metrics were updated must still get its own file; if it kept writing
through the parent's, the two would overwrite each other's counts and a scrape would lose some.
Runs in a fresh interpreter because the value class is chosen when the metrics are first imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_SCRIPT = textwrap.dedent(
    """
    import os
    from prometheus_client import values
    from gateway.features import metrics, telemetry

    # the gateway's value class (cached pid) is the one in use, not the library's default
    assert values.ValueClass is metrics._VALUE_CLASS
    c = metrics.REQUESTS.labels("r", "GET", "2xx", "allowed")
    c.inc()
    child = os.fork()
    if child == 0:
        ok = metrics._Pid.get() == os.getpid()
        c.inc()
        c.inc()
        os._exit(0 if ok else 3)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child saw a stale cached pid"
    c.inc()
    body, _ = telemetry.render()
    for line in body.decode().splitlines():
        if line.startswith("gateway_requests_total{"):
            print(line)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_process_counts_are_kept(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    # Parent 2 (one before, one after the fork) + child 2: nothing overwritten.
    assert out.stdout.strip().endswith(" 4.0"), out.stdout
    files = sorted(p.name for p in tmp_path.glob("counter_*.db"))
    assert len(files) == 2, files

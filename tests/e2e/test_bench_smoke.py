"""The benchmark harness runs end to end (``--quick``), reports every field, and cleans up.

Speed is not asserted here (it lives in bench/ and docs/performance.md); what is asserted is that a
user who runs the benchmark gets every number it promises, and that it stops every server it
started, also when interrupted with Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.procs import process_tree
from tests.support.require import binary_or_skip

ROOT = Path(__file__).resolve().parents[2]
RUN_FIELDS = (
    "rps",
    "p50_us",
    "p99_us",
    "cpu_us_per_req",
    "upstream_cpu_us_per_req",
    "lookups_per_req",
    "requests",
    "non2xx",
    "socket_errors",
)


def _listening(url: str) -> bool:
    host, port = url.split("://", 1)[-1].rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def _requires() -> None:
    binary_or_skip("nginx", "nginx")
    binary_or_skip("wrk", "wrk")


def _run_bench(out: Path, *args: str) -> dict[str, Any]:
    """``python -m bench --quick ARGS --json OUT``: must exit 0; returns the JSON it wrote."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *args, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _report(results: Path) -> str:
    """``python -m bench.report``: the Markdown tables of docs/performance.md, from the JSON."""
    return subprocess.run(
        [sys.executable, "-m", "bench.report", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def test_quick_run_reports_every_number_and_stops_its_servers(tmp_path: Path) -> None:
    _requires()
    out = tmp_path / "bench.json"
    res = _run_bench(out)

    expected = {
        "cache-hit": {"direct", "nginx-proxy", "gateway", "aiohttp-floor"},
        "c1": {"direct", "nginx-proxy", "gateway", "aiohttp-floor"},
        "auth": {"gateway", "gateway/miss", "gateway/malformed", "gateway/unknown"},
        "big": {"direct", "nginx-proxy", "gateway"},
        "conns": {"direct", "nginx-proxy", "gateway"},
    }
    assert set(res["scenarios"]) == set(expected)
    for name, labels in expected.items():
        median = res["scenarios"][name]["median"]
        assert set(median) == labels, name
        for label, m in median.items():
            assert set(RUN_FIELDS) <= set(m), (name, label)
            # Every contender really served load, and CPU was really measured.
            assert m["requests"] > 0 and m["rps"] > 0, (name, label)
            assert m["p50_us"] > 0 and m["p99_us"] >= m["p50_us"], (name, label)
            assert m["cpu_us_per_req"] > 0, (name, label)
    ratios = res["scenarios"]["cache-hit"]["ratios"]
    assert ratios["gateway/nginx-proxy req/s"] > 0 and ratios["gateway/direct req/s"] > 0
    assert ratios["aiohttp-floor/nginx-proxy req/s"] > 0
    # Issue 18's two targets: the gateway against the aiohttp floor, by CPU and by req/s.
    assert ratios["gateway/aiohttp-floor cpu"] > 0 and ratios["gateway/aiohttp-floor req/s"] > 0
    targets = {row["target"] for row in res["targets"]}
    assert {
        "cache-hit CPU/req, gateway/aiohttp-floor",
        "cache-hit req/s, gateway/aiohttp-floor",
    } <= targets

    auth = res["scenarios"]["auth"]["median"]
    # Refusals are what the floods must get; the valid token must be let through.
    assert auth["gateway"]["non2xx"] == 0
    assert auth["gateway/malformed"]["non2xx"] == auth["gateway/malformed"]["requests"]
    assert auth["gateway/unknown"]["non2xx"] == auth["gateway/unknown"]["requests"]
    # A cache miss really asks the store; a malformed token never does.
    assert auth["gateway/miss"]["lookups_per_req"] > 0.5
    assert auth["gateway/malformed"]["lookups_per_req"] == 0

    assert res["soak"]["samples_mib"] and res["soak"]["rss_end_mib"] > 0
    assert res["stream"]["complete"] and res["stream"]["rss_peak_max_mib"] > 0
    names = {row["target"] for row in res["targets"]}
    assert len(names) == 13 and all(row["value"] is not None for row in res["targets"])
    assert "machine" in res and res["machine"]["nproc"] >= 1

    for url in res["servers"].values():
        assert not _listening(url), f"{url} still listening after the benchmark exited"

    # The tables of docs/performance.md come from this JSON.
    report = _report(out)
    assert "| cache-hit (c=64) | gateway |" in report
    assert report.count("| met |") + report.count("| **not met** |") == 12
    assert report.count("| reference |") == 1  # gateway/nginx-proxy: no longer a target


def test_baseline_and_ceiling_contenders(tmp_path: Path) -> None:
    """``--baseline REV`` runs the older gateway beside this one and also loads both at once;
    ``--ceiling`` adds the two relays (aiohttp parser on bare uvloop; bare uvloop) to cache-hit.

    The paired rounds are what make a before/after readable on a noisy host: both must have
    served load in the same window, with each one's CPU measured on its own processes.
    """
    _requires()
    out = tmp_path / "paired.json"
    res = _run_bench(
        out, "--scenarios", "cache-hit", "--no-floor", "--baseline", "HEAD", "--ceiling"
    )
    hit = res["scenarios"]["cache-hit"]
    assert set(hit["median"]) == {
        "direct",
        "nginx-proxy",
        "gateway",
        "gateway@HEAD",
        "parser-relay",
        "raw-relay",
    }
    for name in ("parser-relay", "raw-relay"):
        relay = hit["median"][name]
        # Every request relayed and answered 2xx: a relay that broke would show here.
        assert relay["requests"] > 0 and relay["non2xx"] == 0 and relay["socket_errors"] == 0
        assert hit["ratios"][f"{name}/nginx-proxy req/s"] > 0
    paired = res["paired"]
    assert (paired["a"], paired["b"]) == ("gateway", "gateway@HEAD")
    for rnd in paired["rounds"]:
        a, b = rnd["gateway"], rnd["gateway@HEAD"]
        assert a["requests"] > 0 and b["requests"] > 0
        assert a["non2xx"] == 0 and b["non2xx"] == 0
        assert a["cpu_us_per_req"] > 0 and b["cpu_us_per_req"] > 0
        assert abs(rnd["cpu_ratio"] - a["cpu_us_per_req"] / b["cpu_us_per_req"]) < 1e-9
    for url in res["servers"].values():
        assert not _listening(url), f"{url} still listening after the benchmark exited"
    report = _report(out)
    assert "Paired before/after: gateway and gateway@HEAD" in report


def test_tls_scenarios(tmp_path: Path) -> None:
    """``--scenarios tls,tls-new``: nginx and the gateway terminating TLS beside their plain selves,
    keep-alive and a new connection per request, and the gateway to an https upstream."""
    _requires()
    binary_or_skip("openssl", "openssl")
    out = tmp_path / "tls.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenarios", "tls,tls-new", "--no-floor",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    both = {"nginx-proxy", "nginx-proxy-tls", "gateway", "gateway-tls"}
    assert set(res["scenarios"]["tls"]["median"]) == both | {"gateway-https-up"}
    assert set(res["scenarios"]["tls-new"]["median"]) == both
    for name in ("tls", "tls-new"):
        sc = res["scenarios"][name]
        for label, m in sc["median"].items():
            # Every request answered 2xx over a real handshake: a broken TLS setup shows here.
            assert m["requests"] > 0 and m["non2xx"] == 0 and m["socket_errors"] == 0, label
        assert sc["ratios"]["gateway-tls/nginx-proxy-tls req/s"] > 0
        assert "gateway TLS cost cpu µs/req" in sc["ratios"]
    assert res["servers"]["gateway-tls"].startswith("https://")
    for url in res["servers"].values():
        assert not _listening(url), f"{url} still listening after the benchmark exited"


def _start_mid_sitting() -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``bench --quick`` with its servers up and wrk about to run: the moment to interrupt it.

    The benchmark runs in a session of its own so the test can always reach whatever it started.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "--quick", "--duration", "30", "--scenarios", "cache-hit"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    servers: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("servers: "):
            servers = dict(kv.split("=", 1) for kv in line.split()[1:])
        if "== cache-hit" in line:  # servers up, wrk about to run: interrupt mid-sitting
            break
    return proc, servers


def _wait_closed(urls: list[str], timeout: float) -> list[str]:
    """The URLs still listening after up to ``timeout`` seconds of polling."""
    deadline = time.monotonic() + timeout
    while True:
        open_ = [u for u in urls if _listening(u)]
        if not open_ or time.monotonic() > deadline:
            return open_
        time.sleep(0.1)


def _gone(pids: list[int], timeout: float) -> list[int]:
    """Those of ``pids`` still running after up to ``timeout`` seconds of polling."""
    deadline = time.monotonic() + timeout
    while (live := _live(pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return live


def _live(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (a zombie awaiting its reaper has stopped)."""
    live = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            live.append(pid)
    return live


# Deadlines sized for a loaded 2-core machine (load ~10 has been seen): the benchmark stops its
# servers with a 10 s grace each, and a loaded host can take several seconds to reap nginx.
STOP_DEADLINE = 120


def test_ctrl_c_stops_every_server(tmp_path: Path) -> None:
    _requires()
    proc, servers = _start_mid_sitting()
    started: list[int] = []
    try:
        assert servers, "the benchmark never reported its servers"
        assert all(_listening(u) for u in servers.values())
        started = process_tree(proc.pid)[1:]
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=STOP_DEADLINE)
        # Ctrl-C unwinds through the benchmark's own cleanup. Its last step SIGKILLs each group,
        # and a killed grandchild (an nginx worker) may still hold its port for a moment on a
        # loaded host until the kernel has it gone: poll for that, with a deadline.
        still = _wait_closed(list(servers.values()), STOP_DEADLINE)
        assert still == [], f"still listening after Ctrl-C: {still}"
        assert _gone(started, STOP_DEADLINE) == [], "processes outlived the benchmark"
    finally:
        _reap(proc, started)


def test_sigkill_of_the_benchmark_leaves_nothing_behind(tmp_path: Path) -> None:
    """A benchmark killed outright runs no cleanup of its own; its watchdog must stop every server
    group (nginx masters and workers, gateway supervisor and workers, the floor) by itself."""
    _requires()
    proc, servers = _start_mid_sitting()
    started: list[int] = []
    try:
        assert servers, "the benchmark never reported its servers"
        assert all(_listening(u) for u in servers.values())
        # Every server process, recorded while the benchmark is still their parent.
        started = process_tree(proc.pid)[1:]
        proc.kill()
        proc.wait(timeout=STOP_DEADLINE)
        still = _wait_closed(list(servers.values()), STOP_DEADLINE)
        assert still == [], f"still listening after the benchmark was killed: {still}"
        assert _gone(started, STOP_DEADLINE) == [], "processes outlived the killed benchmark"
    finally:
        _reap(proc, started)


def _reap(proc: subprocess.Popen[str], started: list[int]) -> None:
    """On any exit path, a failed assertion included: kill the benchmark's session and every
    server group it had started, so a failing test still leaves nothing running."""
    for pgid in [proc.pid, *started]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def test_authz_scenario_reports_every_contender_and_the_revocation_latency(tmp_path: Path) -> None:
    """``--scenarios authz``: nginx auth_request (config/nginx/auth_request.conf as shipped) with
    and without its decision cache, beside nginx-proxy and proxy mode, and revocations measured
    through the cache. Every decision contender must have let the valid token through."""
    _requires()
    out = tmp_path / "authz.json"
    res = _run_bench(out, "--scenarios", "authz", "--no-floor")
    median = res["scenarios"]["authz"]["median"]
    assert set(median) == {"direct", "nginx-proxy", "gateway", "nginx+authz", "nginx+authz+cache"}
    for label, m in median.items():
        assert m["requests"] > 0 and m["non2xx"] == 0 and m["socket_errors"] == 0, label
        assert m["cpu_us_per_req"] > 0, label
    ratios = res["scenarios"]["authz"]["ratios"]
    assert ratios["nginx+authz/gateway req/s"] > 0
    assert ratios["nginx+authz+cache/nginx-proxy req/s"] > 0
    rv = res["revocation"]
    assert rv["rounds"] == len(rv["latencies_s"]) == 5 and rv["max_s"] > 0
    names = {row["target"] for row in res["targets"]}
    assert "revocation through the decision cache, max (s)" in names
    for url in res["servers"].values():
        assert not _listening(url), f"{url} still listening after the benchmark exited"
    assert "Revocation through nginx+authz+cache under load" in _report(out)

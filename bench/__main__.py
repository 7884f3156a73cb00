"""``python -m bench`` (or ``bench/run``): the gateway against nginx, in one alternating sitting.

Starts an nginx upstream, nginx as a plain reverse proxy, and ``gateway serve --workers N`` on
127.0.0.1 free ports, then runs wrk against them round after round (direct, nginx-proxy, gateway,
direct, …) so that drift from other load on the machine hits every contender alike. Reports req/s,
p50, p99 and CPU µs per request of each server (``/proc`` utime+stime of its process tree), the
ratios the issue's targets are stated in, and whether each target is met. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import profile
from bench import store as bench_store
from bench.procs import Processes, cpu_seconds, free_port, rss_bytes
from bench.servers import (
    Chain,
    Server,
    gateway_config,
    make_certificate,
    scrape,
    start_floor,
    start_gateway,
    start_nginx_authz,
    start_nginx_proxy,
    start_otlp_sink,
    start_parserrelay,
    start_rawrelay,
    start_upstream,
    tls_twin,
)
from gateway import config as config_mod
from gateway.management.services import Services
from gateway.store.sqlite import SQLiteStore

LUA = Path(__file__).resolve().parent / "lua"
ALL = ("cache-hit", "c1", "cache-miss", "malformed", "unknown", "big", "conns", "soak", "stream")
# Opt-in (issue 22): TLS termination, gateway vs nginx, keep-alive and a new connection per request.
TLS = ("tls", "tls-new")
# Run only when asked for by name (--scenarios authz): two more nginx instances beside the others.
OPT_IN = ("authz", *TLS)
# Store queries a request may cause (background polls and batched usage writes excluded).
LOOKUPS = ("find_token", "get_workspace", "get_membership")
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
# Only for nginx + auth_request contenders: decisions the gateway made, and their CPU, per request.
CHAIN_FIELDS = ("decisions_per_req", "gateway_cpu_us_per_req")


@dataclass
class Target:
    label: str
    server: Server
    path: str = "/api/small"
    script: str = "auth.lua"
    env: dict[str, str] = field(default_factory=dict)
    expect_ok: bool = True  # False: every response should be a refusal (401)
    token_file: bool = False  # advances the cache-miss token offset


@dataclass
class Scenario:
    name: str
    targets: list[Target]
    connections: int
    threads: int
    what: str


@dataclass
class Bench:
    args: argparse.Namespace
    procs: Processes
    tmp: Path
    server_cpus: str | None
    wrk_cpus: str | None
    upstream: Server
    metrics_port: int
    miss_offset: int = 0
    miss_total: int = 0
    notes: list[str] = field(default_factory=list)

    # -- one wrk run -------------------------------------------------------------------------------

    def _env(self, t: Target, threads: int) -> dict[str, str]:
        env = {"BENCH_LUA_DIR": str(LUA), "BENCH_THREADS": str(threads), **t.env}
        if t.token_file:
            env["BENCH_TOKENS_OFFSET"] = str(self.miss_offset)
        return env

    @staticmethod
    def _argv(t: Target, connections: int, threads: int, duration: int) -> list[str]:
        return [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA / t.script),
            t.server.url + t.path,
        ]

    @staticmethod
    def _read(out: Path, label: str) -> dict[str, Any]:
        text = out.read_text()
        line = next((x for x in text.splitlines() if x.startswith("BENCH_JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result for {label}:\n{text[-2000:]}")
        raw: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
        return raw

    def wrk(self, t: Target, connections: int, threads: int, duration: int) -> dict[str, Any]:
        env = self._env(t, threads)
        is_gateway = t.server.name == "gateway"
        chain = isinstance(t.server, Chain)
        before_m = scrape(self.metrics_port) if is_gateway or chain else {}
        behind = [p for s in t.server.behind for p in s.pids()] if chain else []  # type: ignore[attr-defined]
        cpu_behind0 = cpu_seconds(behind)
        pids = t.server.pids()
        up_pids = self.upstream.pids() if t.server is not self.upstream else []
        cpu0, up0 = cpu_seconds(pids), cpu_seconds(up_pids)
        out = self.tmp / "wrk.out"
        argv = self._argv(t, connections, threads, duration)
        proc = self.procs.start("wrk", argv, cpus=self.wrk_cpus, env=env, stdout=out)
        try:
            proc.wait(timeout=duration + 60)
        finally:
            self.procs.stop(proc)
        self.settle(pids, t.label)
        cpu1, up1 = cpu_seconds(pids), cpu_seconds(up_pids)
        raw = self._read(out, t.label)
        n = max(raw["requests"], 1)
        result: dict[str, Any] = {
            "rps": raw["requests"] / (raw["duration_us"] / 1e6),
            "p50_us": raw["p50_us"],
            "p99_us": raw["p99_us"],
            "cpu_us_per_req": (cpu1 - cpu0) * 1e6 / n,
            "upstream_cpu_us_per_req": (up1 - up0) * 1e6 / n if up_pids else 0.0,
            "lookups_per_req": 0.0,
            "requests": raw["requests"],
            "non2xx": raw["non2xx"],
            "socket_errors": raw["socket_errors"],
            "bytes": raw["bytes"],
        }
        if chain:
            # What nginx asked the gateway, and what that cost the gateway, per client request.
            after_m = scrape(self.metrics_port)
            decided = sum(
                v - before_m.get(k, 0.0)
                for k, v in after_m.items()
                if k.startswith("gateway_requests_total{")
            )
            result["decisions_per_req"] = decided / n
            result["gateway_cpu_us_per_req"] = (cpu_seconds(behind) - cpu_behind0) * 1e6 / n
        if is_gateway:
            after_m = scrape(self.metrics_port)
            lookups = sum(
                after_m.get(k, 0.0) - before_m.get(k, 0.0)
                for q in LOOKUPS
                for k in (f'gateway_store_query_duration_seconds_count{{query="{q}"}}',)
            )
            result["lookups_per_req"] = lookups / n
        if t.token_file:
            self.miss_offset += raw["requests"]
            if self.miss_offset >= self.miss_total:
                self.notes.append("cache-miss token list wrapped: later requests may hit")
        expected = 0 if t.expect_ok else raw["requests"]
        if raw["non2xx"] != expected or raw["socket_errors"]:
            self.notes.append(
                f"{t.label}: {raw['non2xx']} non-2xx (expected {expected}), "
                f"{raw['socket_errors']} socket errors"
            )
        return result

    def settle(self, pids: list[int], label: str, timeout: float = 30.0) -> None:
        """Wait until the server is idle again (< 10% of a core over 0.2 s).

        A slow server still works through queued requests after wrk stops; without this their CPU
        and store lookups would be charged to the next run.
        """
        deadline = time.monotonic() + timeout
        last = cpu_seconds(pids)
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = cpu_seconds(pids)
            if now - last <= 0.02:
                return
            last = now
        self.notes.append(f"{label}: server still busy {timeout}s after a run")

    def paired(self, a: Target, b: Target, connections: int, duration: int) -> dict[str, Any]:
        """Load ``a`` and ``b`` at the same moment, half the connections each (one wrk each).

        Before/after by alternating rounds cannot resolve a 10% change on a shared host: the
        host's speed moves by ±15% from one round to the next. Measured side by side, both
        servers see the same host at the same moment, so the ratio of their CPU per request
        holds still where the absolute numbers do not.
        """
        half = max(connections // 2, 1)
        pids = {t.label: t.server.pids() for t in (a, b)}
        cpu0 = {label: cpu_seconds(p) for label, p in pids.items()}
        running: list[tuple[Target, Path, subprocess.Popen[bytes]]] = []
        for t in (a, b):
            out = self.tmp / f"wrk-pair-{len(running)}.out"
            argv = self._argv(t, half, 1, duration)
            env = self._env(t, 1)
            running.append(
                (t, out, self.procs.start("wrk", argv, cpus=self.wrk_cpus, env=env, stdout=out))
            )
        try:
            for _, _, proc in running:
                proc.wait(timeout=duration + 60)
        finally:
            for _, _, proc in running:  # both, also when one of them hung
                self.procs.stop(proc)
        for t in (a, b):
            self.settle(pids[t.label], t.label)
        result: dict[str, Any] = {}
        for t, out, _ in running:
            raw = self._read(out, t.label)
            n = max(raw["requests"], 1)
            result[t.label] = {
                "rps": raw["requests"] / (raw["duration_us"] / 1e6),
                "cpu_us_per_req": (cpu_seconds(pids[t.label]) - cpu0[t.label]) * 1e6 / n,
                "requests": raw["requests"],
                "non2xx": raw["non2xx"],
            }
        return result

    # -- a scenario: rounds of alternating targets -------------------------------------------------

    def scenario(self, sc: Scenario) -> dict[str, Any]:
        a = self.args
        log(f"\n== {sc.name}: {sc.what} (c={sc.connections}, {a.rounds} rounds x {a.duration}s)")
        if not a.quick:
            for t in sc.targets:  # warm caches, pools and JITs; not recorded
                self.wrk(t, sc.connections, sc.threads, 2)
        runs: dict[str, list[dict[str, Any]]] = {t.label: [] for t in sc.targets}
        for r in range(a.rounds):
            for t in sc.targets:
                res = self.wrk(t, sc.connections, sc.threads, a.duration)
                runs[t.label].append(res)
                log(
                    f"  round {r + 1} {t.label:<18} {res['rps']:>9.0f} req/s  "
                    f"p50 {res['p50_us'] / 1000:6.2f} ms  p99 {res['p99_us'] / 1000:7.2f} ms  "
                    f"cpu {res['cpu_us_per_req']:6.1f} µs/req"
                )
        summary = {
            label: {
                k: statistics.median(x[k] for x in rs)
                for k in RUN_FIELDS + CHAIN_FIELDS
                if k in rs[0]
            }
            for label, rs in runs.items()
        }
        return {
            "what": sc.what,
            "connections": sc.connections,
            "rounds": runs,
            "median": summary,
        }


def log(msg: str) -> None:
    print(msg, flush=True)


def _cpus(mode: str) -> tuple[str | None, str | None]:
    """(server cpus, wrk cpus): split the machine's CPUs so wrk never runs on a server's core."""
    if mode == "none" or shutil.which("taskset") is None:
        return None, None
    avail = sorted(os.sched_getaffinity(0))
    if len(avail) < 2:
        return None, None
    half = max(1, len(avail) // 2)
    return ",".join(map(str, avail[:half])), ",".join(map(str, avail[half:]))


def _machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import aiohttp

    def version(argv: list[str]) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except OSError:
            return "missing"
        return (p.stdout + p.stderr).strip().splitlines()[0] if (p.stdout + p.stderr) else ""

    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "nginx": version(["nginx", "-v"]),
        "wrk": version(["wrk", "-v"]),
        "loadavg_at_start": os.getloadavg(),
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def _soak(
    bench: Bench, target: Target, seconds: int, connections: int, threads: int
) -> dict[str, Any]:
    log(f"\n== soak: gateway cache-hit at full load for {seconds}s, RSS sampled every second")
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    workers = target.server.workers()

    def sample() -> None:
        start = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - start, sum(rss_bytes(p) for p in workers)))
            stop.wait(1.0)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        res = bench.wrk(target, connections, threads, seconds)
    finally:
        stop.set()
        th.join()
    values = [v for _, v in samples]
    k = max(1, len(values) // 10)
    # Baseline after the first tenth (warm-up: caches, pools and allocator arenas fill), against
    # the last tenth.
    base = statistics.mean(values[k : 2 * k] or values[:k])
    end = statistics.mean(values[-k:])
    out = {
        "seconds": seconds,
        "rps": res["rps"],
        "requests": res["requests"],
        "rss_start_mib": base / 2**20,
        "rss_end_mib": end / 2**20,
        "rss_max_mib": max(values) / 2**20,
        "rss_drift": _ratio(end, base) - 1,
        "samples_mib": [round(v / 2**20, 1) for v in values],
    }
    log(
        f"  {res['rps']:.0f} req/s; workers' RSS {out['rss_start_mib']:.1f} → "
        f"{out['rss_end_mib']:.1f} MiB ({out['rss_drift'] * 100:+.1f}%), max {out['rss_max_mib']:.1f}"
    )
    return out


def _stream(bench: Bench, server: Server, token: str, size: int) -> dict[str, Any]:
    log(f"\n== stream: one {size / 2**20:.0f} MiB response through the gateway, RSS sampled")
    workers = server.workers()
    peak = {p: rss_bytes(p) for p in workers}
    before = dict(peak)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for p in workers:
                peak[p] = max(peak[p], rss_bytes(p))
            stop.wait(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    received = 0
    started = time.monotonic()
    try:
        req = urllib.request.Request(
            server.url + "/api/files/big.bin", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req, timeout=120) as r:
            while chunk := r.read(1 << 20):
                received += len(chunk)
    finally:
        stop.set()
        th.join()
    elapsed = time.monotonic() - started
    out = {
        "bytes": received,
        "complete": received == size,
        "seconds": elapsed,
        "mib_per_s": received / 2**20 / elapsed if elapsed else 0.0,
        "rss_before_max_mib": max(before.values()) / 2**20,
        "rss_peak_max_mib": max(peak.values()) / 2**20,
    }
    log(
        f"  {received:,} bytes in {elapsed:.1f}s ({out['mib_per_s']:.0f} MiB/s); "
        f"peak worker RSS {out['rss_peak_max_mib']:.1f} MiB (before {out['rss_before_max_mib']:.1f})"
    )
    return out


def _paired(
    bench: Bench, a: Target, b: Target, connections: int, rounds: int, duration: int
) -> dict[str, Any]:
    """Before/after at the same moment: ``a``'s CPU per request over ``b``'s, per round."""
    log(
        f"\n== paired: {a.label} and {b.label} under cache-hit load at the same moment "
        f"(c={connections} split between them, {rounds} rounds x {duration}s)"
    )
    runs = []
    for r in range(rounds):
        res = bench.paired(a, b, connections, duration)
        ratio = _ratio(res[a.label]["cpu_us_per_req"], res[b.label]["cpu_us_per_req"])
        runs.append({**res, "cpu_ratio": ratio})
        log(
            f"  round {r + 1} {a.label} {res[a.label]['cpu_us_per_req']:6.1f} µs/req, "
            f"{b.label} {res[b.label]['cpu_us_per_req']:6.1f} µs/req: ratio {ratio:.3f}"
        )
    ratios = [x["cpu_ratio"] for x in runs]
    return {
        "a": a.label,
        "b": b.label,
        "connections": connections,
        "rounds": runs,
        "cpu_ratio_median": statistics.median(ratios),
        "cpu_ratio_min": min(ratios),
        "cpu_ratio_max": max(ratios),
    }


def _profile(bench: Bench, target: Target, out: Path) -> dict[str, Any]:
    seconds = bench.args.duration
    log(f"\n== profile: py-spy on one gateway worker, cache-hit load for {seconds}s")
    spy = profile.record(target.server.workers()[0], seconds, out)
    try:
        res = bench.wrk(
            target, bench.args.connections, len((bench.wrk_cpus or "0,1").split(",")), seconds
        )
        spy.wait(timeout=seconds + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    top = profile.top_frames(out.read_text() if out.exists() else "", 20)
    log(f"  {res['rps']:.0f} req/s while profiling; top frames by own time:")
    for frame, share in top["self"]:
        log(f"  {share * 100:5.1f}%  {frame}")
    log("  by inclusive time:")
    for frame, share in top["inclusive"]:
        log(f"  {share * 100:5.1f}%  {frame}")
    return {"rps": res["rps"], **top}


def _authz_ratios(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """The authz goals' ratios, each the median of per-round ratios (a round's contenders run
    seconds apart, so the host's drift between rounds cancels), in req/s and as implied by CPU
    per request (server + its upstream, all on the same cores: what throughput would be if the
    servers alone had the cores; the steadier reading on a shared host)."""

    def both(r: dict[str, Any]) -> float:
        return float(r["cpu_us_per_req"] + r["upstream_cpu_us_per_req"])

    def per_round(a: str, b: str) -> tuple[float, float]:
        pairs = list(zip(rounds[a], rounds[b], strict=True))
        rps = statistics.median(_ratio(x["rps"], y["rps"]) for x, y in pairs)
        cpu = statistics.median(_ratio(both(y), both(x)) for x, y in pairs)
        return rps, cpu

    out = {}
    for a, b in (("nginx+authz", "gateway"), ("nginx+authz+cache", "nginx-proxy")):
        rps, cpu = per_round(a, b)
        out[f"{a}/{b} req/s"] = rps
        out[f"{a}/{b} implied by CPU per request"] = cpu
    return out


def _revocation(
    bench: Bench, cached: Server, load: Target, probe: Path, db: Path, rounds: int = 5
) -> dict[str, Any]:
    """How long a revoked token keeps passing nginx's decision cache, under load.

    Each round mints a token in the benchmark's store (through the gateway's service layer, as
    the CLI would), has it allowed and cached, revokes it, and polls through nginx every 5 ms
    until it is refused; the latency runs from the committed revocation to the first refusal.
    Meanwhile wrk keeps nginx + gateway busy with the cache-hit token.
    """
    log(f"\n== revocation through {cached.name}: {rounds} tokens revoked under load")
    config = config_mod.load(probe)
    wrk = bench.procs.start(
        "wrk",
        Bench._argv(load, max(bench.args.connections // 2, 1), 1, 600),
        cpus=bench.wrk_cpus,
        env=bench._env(load, 1),
        stdout=bench.tmp / "wrk-revocation.out",
    )

    async def measure() -> list[float]:
        store = SQLiteStore(f"sqlite:///{db}")
        await store.open()
        out = []
        try:
            svc = Services(store, config)
            async with aiohttp.ClientSession() as http:

                async def status(tok: str) -> int:
                    headers = {"Authorization": f"Bearer {tok}"}
                    async with http.get(cached.url + "/api/small", headers=headers) as r:
                        await r.read()
                        return r.status

                for i in range(rounds):
                    rec, tok = await svc.create_token(
                        workspace=bench_store.WORKSPACE_SLUG,
                        name=f"revocation {i}",
                        scopes=["items:read"],
                    )
                    for _ in range(20):  # allowed, and now in nginx's decision cache
                        assert await status(tok) == 200
                    await svc.revoke_token(rec.id)
                    committed = time.monotonic()
                    while await status(tok) != 401:
                        if time.monotonic() - committed > 10:
                            raise RuntimeError("a revoked token still passed after 10 s")
                        await asyncio.sleep(0.005)
                    out.append(time.monotonic() - committed)
                    log(f"  token {i + 1}: refused {out[-1] * 1000:.0f} ms after revocation")
        finally:
            await store.close()
        return out

    try:
        latencies = asyncio.run(measure())
    finally:
        bench.procs.stop(wrk)
    return {
        "server": cached.name,
        "rounds": rounds,
        "latencies_s": latencies,
        "max_s": max(latencies),
        "median_s": statistics.median(latencies),
    }


def _targets_table(res: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    s = res["scenarios"]
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float | None, target: str, met: bool | None) -> None:
        rows.append({"target": name, "value": value, "goal": target, "met": met})

    if "cache-hit" in s:
        m = s["cache-hit"]["median"]
        if "aiohttp-floor" in m:
            # Issue 18: the gateway's own cost, against the cheapest proxy on its own stack.
            floor = m["aiohttp-floor"]
            r = _ratio(m["gateway"]["cpu_us_per_req"], floor["cpu_us_per_req"])
            add("cache-hit CPU/req, gateway/aiohttp-floor", r, "≤ 1.3", r <= 1.3)
            r = _ratio(m["gateway"]["rps"], floor["rps"])
            add("cache-hit req/s, gateway/aiohttp-floor", r, "≥ 0.75", r >= 0.75)
        # nginx is the reference, no longer a target (issue 18 replaced issue 7's 0.30x).
        add(
            "cache-hit req/s, gateway/nginx-proxy",
            _ratio(m["gateway"]["rps"], m["nginx-proxy"]["rps"]),
            "reference",
            None,
        )
        add(
            "CPU µs per proxied request",
            m["gateway"]["cpu_us_per_req"],
            "≤ 250",
            m["gateway"]["cpu_us_per_req"] <= 250,
        )
    if "c1" in s:
        m = s["c1"]["median"]
        added = m["gateway"]["p50_us"] - m["direct"]["p50_us"]
        add("added p50 at c=1 over direct (µs)", added, "≤ 1000", added <= 1000)
    if "auth" in s:
        m = s["auth"]["median"]
        hit = m["gateway"]["rps"]
        if "gateway/miss" in m:
            r = _ratio(m["gateway/miss"]["rps"], hit)
            add("cache-miss (1M store) / cache-hit req/s", r, "≥ 0.5", r >= 0.5)
        if "gateway/malformed" in m:
            r = _ratio(m["gateway/malformed"]["rps"], hit)
            add("malformed flood / cache-hit req/s", r, "≥ 1.0", r >= 1.0)
            lk = m["gateway/malformed"]["lookups_per_req"]
            add("malformed flood store lookups/req", lk, "= 0", lk == 0)
        if "gateway/unknown" in m:
            r = _ratio(m["gateway/unknown"]["rps"], hit)
            add("unknown-token flood / cache-hit req/s", r, "≥ 0.5", r >= 0.5)
            lk = m["gateway/unknown"]["lookups_per_req"]
            add("unknown-token flood store lookups/req", lk, "≤ 0.1 (negative cache)", lk <= 0.1)
        # Only cache-TTL refreshes may reach the store: one per key per worker per TTL (60 s),
        # a few per 100,000 requests; a burst of concurrent misses would show as 0.001 and up.
        lk = m["gateway"]["lookups_per_req"]
        add("cache-hit store lookups/req", lk, "< 0.001 (TTL refreshes only)", lk < 0.001)
    if "authz" in s:
        ratios = s["authz"]["ratios"]
        r = ratios["nginx+authz/gateway req/s"]
        add("nginx+authz (no cache) / gateway proxy-mode req/s", r, "≥ 1.5", r >= 1.5)
        r = ratios["nginx+authz+cache/nginx-proxy req/s"]
        add("nginx+authz+cache (1 s) / nginx-proxy req/s", r, "≥ 0.6", r >= 0.6)
    if "revocation" in res:
        worst = res["revocation"]["max_s"]
        add("revocation through the decision cache, max (s)", worst, "≤ 1.0", worst <= 1.0)
    if "soak" in res:
        d = res["soak"]["rss_drift"]
        add(f"RSS drift over {res['soak']['seconds']}s soak", d, "within ±10%", abs(d) <= 0.10)
        if res["soak"]["seconds"] < 600:
            rows[-1]["goal"] += " (target is a 600 s soak)"
    if "stream" in res:
        st = res["stream"]
        add(
            f"peak worker RSS streaming {st['bytes'] / 2**20:.0f} MiB",
            st["rss_peak_max_mib"],
            "< 100 MiB",
            st["complete"] and st["rss_peak_max_mib"] < 100,
        )
    return rows


def _print_summary(res: dict[str, Any]) -> None:
    log("\n== summary (medians of rounds)")
    hdr = f"{'scenario':<11}{'server':<19}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'cpu µs/req':>11}{'up µs/req':>10}{'lookups/req':>12}"
    log(hdr)
    for name, sc in res["scenarios"].items():
        for label, m in sc["median"].items():
            log(
                f"{name:<11}{label:<19}{m['rps']:>9.0f}{m['p50_us'] / 1000:>8.2f}{m['p99_us'] / 1000:>8.2f}"
                f"{m['cpu_us_per_req']:>11.1f}{m['upstream_cpu_us_per_req']:>10.1f}{m['lookups_per_req']:>12.3f}"
            )
        for k, v in sc.get("ratios", {}).items():
            log(f"{'':<11}{k}: {v:.3f}")
    log("\n== targets")
    for row in res["targets"]:
        v = row["value"]
        mark = "reference" if row["met"] is None else "met" if row["met"] else "NOT MET"
        log(f"  {row['target']:<44} {v:>10.3f}   goal {row['goal']:<30} {mark}")
    for note in res["notes"]:
        log(f"  note: {note}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--scenarios",
        default=",".join(ALL),
        help=f"comma list of {', '.join(ALL)} (default: all of these), and {', '.join(OPT_IN)}",
    )
    p.add_argument("--quick", action="store_true", help="CI smoke: 1 round of 1 s, small store")
    p.add_argument("--rounds", type=int, help="rounds per scenario (default 3)")
    p.add_argument("--duration", type=int, help="seconds per wrk run (default 10)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--store-tokens", type=int, help="tokens in the store (default 1,000,000)")
    p.add_argument("--unknown-pool", type=int, default=1000, help="distinct unknown tokens")
    p.add_argument(
        "--soak-seconds", type=int, help="soak length (default 60; 600 for the real run)"
    )
    p.add_argument("--stream-bytes", type=int, help="streamed body size (default 1 GiB)")
    p.add_argument("--workers", type=int, default=2, help="gateway workers and nginx-proxy workers")
    p.add_argument(
        "--no-floor", action="store_true", help="skip the aiohttp floor contender (bench/floor.py)"
    )
    p.add_argument("--pin", choices=("split", "none"), default="split", help="taskset pinning")
    p.add_argument("--json", type=Path, help="write every number to this file")
    p.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the gateway at git revision REV beside this one (before/after)",
    )
    p.add_argument(
        "--ceiling",
        action="store_true",
        help="also run, in cache-hit, bench/rawrelay.py (bare uvloop, no HTTP library: the Python "
        "ceiling) and bench/parserrelay.py (aiohttp's C parser on bare uvloop, no web layer)",
    )
    p.add_argument(
        "--tracing",
        action="store_true",
        help="also run a second gateway with tracing on (exported by OTLP/HTTP to "
        "bench/otlpsink.py) beside the untraced one, in every scenario",
    )
    p.add_argument(
        "--tracing-ratio",
        type=float,
        default=1.0,
        help="the traced gateway's tracing.sampling_ratio (default 1: every request recorded)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="PATH",
        help="also py-spy one gateway worker under cache-hit load; collapsed stacks to PATH",
    )
    args = p.parse_args(argv)
    q = args.quick
    args.rounds = args.rounds or (1 if q else 3)
    args.duration = args.duration or (1 if q else 10)
    args.store_tokens = args.store_tokens or (2_000 if q else 1_000_000)
    args.soak_seconds = args.soak_seconds or (2 if q else 60)
    args.stream_bytes = args.stream_bytes or ((32 << 20) if q else (1 << 30))
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(ALL) - set(OPT_IN))
    if unknown:
        p.error(f"unknown scenarios: {', '.join(unknown)}")
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            p.error(f"{tool} is not installed (Debian package {tool})")

    server_cpus, wrk_cpus = _cpus(args.pin)
    wrk_threads = len(wrk_cpus.split(",")) if wrk_cpus else 2
    res: dict[str, Any] = {
        "machine": _machine(),
        "settings": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "server_cpus": server_cpus,
            "wrk_cpus": wrk_cpus,
            "wrk_threads": wrk_threads,
        },
        "scenarios": {},
    }
    m = res["machine"]
    log(
        f"machine: {m['nproc']} CPUs ({m['cpu_model']}), load {m['loadavg_at_start'][0]:.2f}; "
        f"servers on CPUs {server_cpus or 'any'}, wrk on {wrk_cpus or 'any'}"
    )
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmpdir,
        # nginx's decision cache on tmpfs, as docs/external-auth.md advises: a cache hit opens
        # and reads a file, and tmpfs makes that cheaper than a disk file system's page cache.
        tempfile.TemporaryDirectory(
            prefix="gateway-bench-decisions-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None
        ) as decisions_dir,
        Processes() as procs,
    ):
        tmp = Path(tmpdir)

        tls = make_certificate(tmp) if set(chosen) & set(TLS) else None
        upstream = start_upstream(procs, tmp, server_cpus, args.stream_bytes, tls)
        proxy = start_nginx_proxy(procs, tmp, server_cpus, upstream, args.workers)
        # The config is needed before the gateway starts to build the store with its services.
        probe = tmp / "probe.yaml"
        probe.write_text(gateway_config(1, 2, 3, tmp / "x.db", upstream))
        db = bench_store.build_store(
            args.store_tokens, config_mod.load(probe), tmp / "gateway.db", log
        )
        authz_port = free_port() if "authz" in chosen else None
        gateway, metrics_port = start_gateway(
            procs, tmp, server_cpus, upstream, db, args.workers, authz=authz_port
        )
        bench = Bench(args, procs, tmp, server_cpus, wrk_cpus, upstream, metrics_port)
        contenders = [upstream, proxy, gateway]
        baseline: Server | None = None
        if args.baseline:
            # The same gateway at an older revision, in the same sitting: before/after honestly.
            src = tmp / "baseline"
            src.mkdir()
            archive = subprocess.run(
                ["git", "archive", args.baseline, "gateway"],
                cwd=Path(__file__).resolve().parents[1],
                capture_output=True,
                check=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
            base_db = bench_store.build_store(
                args.store_tokens, config_mod.load(probe), tmp / "baseline.db", log
            )
            baseline, _ = start_gateway(
                procs,
                tmp,
                server_cpus,
                upstream,
                base_db,
                args.workers,
                name=f"gateway@{args.baseline[:12]}",
                source=src,
            )
            contenders.append(baseline)
        if args.tracing:
            # Same store contents, its own file: the two gateways must not share SQLite locks.
            sink = start_otlp_sink(procs, tmp, server_cpus)
            traced_db = bench_store.build_store(
                args.store_tokens, config_mod.load(probe), tmp / "traced.db", log
            )
            traced, _ = start_gateway(
                procs,
                tmp,
                server_cpus,
                upstream,
                traced_db,
                args.workers,
                name="gateway+tracing",
                tracing=f"{sink.url}/v1/traces",
                tracing_ratio=args.tracing_ratio,
            )
            contenders.append(traced)
        floor = (
            None if args.no_floor else start_floor(procs, tmp, server_cpus, upstream, args.workers)
        )
        ceilings = (
            [
                start_parserrelay(procs, tmp, server_cpus, upstream, args.workers),
                start_rawrelay(procs, tmp, server_cpus, upstream, args.workers),
            ]
            if args.ceiling
            else []
        )
        tls_servers: list[Server] = []
        if tls is not None:
            tls_servers = [
                start_nginx_proxy(procs, tmp, server_cpus, upstream, args.workers, tls),
                start_gateway(
                    procs, tmp, server_cpus, upstream, db, args.workers, "gateway-tls", tls=tls
                )[0],
                start_gateway(
                    procs, tmp, server_cpus, tls_twin(upstream, tmp), db, args.workers,
                    "gateway-https-up", ca=tls[0],
                )[0],
            ]  # fmt: skip
        extras = [x for x in (floor, *ceilings, *tls_servers) if x is not None]
        res["servers"] = {s.name: s.url for s in [*contenders, *extras]}
        log("servers: " + " ".join(f"{k}={v}" for k, v in res["servers"].items()))

        hit_token = bench_store.token(0)
        bad = hit_token[:-1] + ("A" if hit_token[-1] != "A" else "B")  # checksum no longer matches
        auth = {"BENCH_TOKEN": hit_token}
        miss_count = min(args.store_tokens - 1, 600_000)
        bench.miss_total = miss_count
        miss_file = bench_store.write_tokens(tmp / "miss.txt", 1, miss_count)
        unknown_file = bench_store.write_tokens(
            tmp / "unknown.txt", args.store_tokens, args.unknown_pool
        )
        # Sanity: the gateway accepts the cache-hit token before anything is measured.
        req = urllib.request.Request(
            gateway.url + "/api/small", headers={"Authorization": f"Bearer {hit_token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200, r.status

        def trio(path: str = "/api/small") -> list[Target]:
            return [Target(s.name, s, path, env=auth) for s in contenders]

        # The aiohttp floor beside the others where the small-request targets are judged.
        with_floor = [*trio(), Target(floor.name, floor, env=auth)] if floor else trio()

        conns, th = args.connections, wrk_threads
        scenarios: list[Scenario] = []
        if "cache-hit" in chosen:
            ceiling = [Target(c.name, c, env=auth) for c in ceilings]
            scenarios.append(
                Scenario(
                    "cache-hit", [*with_floor, *ceiling], conns, th, "small JSON, one cached token"
                )
            )
        if "c1" in chosen:
            scenarios.append(Scenario("c1", with_floor, 1, 1, "one connection, latency"))
        auth_targets = [Target("gateway", gateway, env=auth)]
        if "cache-miss" in chosen:
            auth_targets.append(
                Target(
                    "gateway/miss",
                    gateway,
                    script="tokens.lua",
                    env={"BENCH_TOKENS_FILE": str(miss_file)},
                    token_file=True,
                )
            )
        if "malformed" in chosen:
            auth_targets.append(
                Target("gateway/malformed", gateway, env={"BENCH_TOKEN": bad}, expect_ok=False)
            )
        if "unknown" in chosen:
            auth_targets.append(
                Target(
                    "gateway/unknown",
                    gateway,
                    script="tokens.lua",
                    env={"BENCH_TOKENS_FILE": str(unknown_file)},
                    expect_ok=False,
                )
            )
        if len(auth_targets) > 1:
            scenarios.append(
                Scenario(
                    "auth",
                    auth_targets,
                    conns,
                    th,
                    f"gateway cache-hit vs miss ({args.store_tokens:,}-token store), malformed "
                    f"and unknown ({args.unknown_pool} distinct) floods",
                )
            )
        if "big" in chosen:
            scenarios.append(
                Scenario("big", trio("/api/files/1m.bin"), 16, th, "1 MiB response streamed")
            )
        authz_servers: list[Chain] = []
        if authz_port is not None:
            authz_servers = [
                start_nginx_authz(
                    procs,
                    tmp,
                    server_cpus,
                    upstream,
                    gateway,
                    authz_port,
                    args.workers,
                    cache_dir=Path(decisions_dir) if c else None,
                )
                for c in (False, True)
            ]
            res["servers"].update({s.name: s.url for s in authz_servers})
            scenarios.append(
                Scenario(
                    "authz",
                    [
                        Target(upstream.name, upstream, env=auth),
                        Target(proxy.name, proxy, env=auth),
                        Target(gateway.name, gateway, env=auth),
                        *(Target(s.name, s, env=auth) for s in authz_servers),
                    ],
                    conns,
                    th,
                    "nginx auth_request + gateway decisions (cpu: nginx and gateway together), "
                    "without and with nginx's 1 s decision cache",
                )
            )
        if "conns" in chosen:
            n = 100 if args.quick else 1000
            scenarios.append(Scenario("conns", trio(), n, th, f"{n} concurrent keep-alive conns"))

        if tls_servers:
            nginx_tls, gateway_tls, gateway_https_up = tls_servers
            plain_and_tls = [proxy, nginx_tls, gateway, gateway_tls]
            if "tls" in chosen:
                scenarios.append(
                    Scenario(
                        "tls",
                        [Target(x.name, x, env=auth) for x in (*plain_and_tls, gateway_https_up)],
                        conns,
                        th,
                        "TLS termination, keep-alive: nginx and the gateway with and without "
                        "TLS, and the gateway to an https upstream",
                    )
                )
            if "tls-new" in chosen:
                scenarios.append(
                    Scenario(
                        "tls-new",
                        [Target(x.name, x, script="close.lua", env=auth) for x in plain_and_tls],
                        conns,
                        th,
                        "a new connection per request (Connection: close): full TLS handshakes",
                    )
                )

        for sc in scenarios:
            out = bench.scenario(sc)
            m = out["median"]
            ratios: dict[str, float] = {}
            if "gateway" in m and "nginx-proxy" in m:
                ratios["gateway/nginx-proxy req/s"] = _ratio(
                    m["gateway"]["rps"], m["nginx-proxy"]["rps"]
                )
            if "gateway" in m and "direct" in m:
                ratios["gateway/direct req/s"] = _ratio(m["gateway"]["rps"], m["direct"]["rps"])
                ratios["gateway - direct p50 µs"] = m["gateway"]["p50_us"] - m["direct"]["p50_us"]
            if "aiohttp-floor" in m and "nginx-proxy" in m:
                floor_m = m["aiohttp-floor"]
                ratios["aiohttp-floor/nginx-proxy req/s"] = _ratio(
                    floor_m["rps"], m["nginx-proxy"]["rps"]
                )
                ratios["gateway/aiohttp-floor req/s"] = _ratio(m["gateway"]["rps"], floor_m["rps"])
                ratios["gateway/aiohttp-floor cpu"] = _ratio(
                    m["gateway"]["cpu_us_per_req"], floor_m["cpu_us_per_req"]
                )
            for relay in ("parser-relay", "raw-relay"):
                if relay in m and "nginx-proxy" in m:
                    ratios[f"{relay}/nginx-proxy req/s"] = _ratio(
                        m[relay]["rps"], m["nginx-proxy"]["rps"]
                    )
            for label in m:
                if label.startswith("gateway@"):
                    ratios[f"gateway/{label} req/s"] = _ratio(m["gateway"]["rps"], m[label]["rps"])
                    ratios[f"gateway/{label} cpu"] = _ratio(
                        m["gateway"]["cpu_us_per_req"], m[label]["cpu_us_per_req"]
                    )
            if "gateway-tls" in m and "nginx-proxy-tls" in m:
                g, n = m["gateway-tls"], m["nginx-proxy-tls"]
                ratios["gateway-tls/nginx-proxy-tls req/s"] = _ratio(g["rps"], n["rps"])
                # What terminating TLS adds to each, in CPU per request (TLS minus plain).
                ratios["gateway TLS cost cpu µs/req"] = (
                    g["cpu_us_per_req"] - m["gateway"]["cpu_us_per_req"]
                )
                ratios["nginx TLS cost cpu µs/req"] = (
                    n["cpu_us_per_req"] - m["nginx-proxy"]["cpu_us_per_req"]
                )
                ratios["gateway-tls/gateway req/s"] = _ratio(g["rps"], m["gateway"]["rps"])
                ratios["nginx-proxy-tls/nginx-proxy req/s"] = _ratio(
                    n["rps"], m["nginx-proxy"]["rps"]
                )
            if "gateway-https-up" in m:
                up = m["gateway-https-up"]
                ratios["gateway-https-up/gateway req/s"] = _ratio(up["rps"], m["gateway"]["rps"])
                ratios["https upstream cost cpu µs/req"] = (
                    up["cpu_us_per_req"] - m["gateway"]["cpu_us_per_req"]
                )
            if sc.name == "authz":
                ratios.update(_authz_ratios(out["rounds"]))
            if "gateway+tracing" in m and "gateway" in m:
                traced, plain = m["gateway+tracing"], m["gateway"]
                ratios["gateway+tracing/gateway req/s"] = _ratio(traced["rps"], plain["rps"])
                ratios["gateway+tracing/gateway cpu"] = _ratio(
                    traced["cpu_us_per_req"], plain["cpu_us_per_req"]
                )
                ratios["gateway+tracing - gateway p50 µs"] = traced["p50_us"] - plain["p50_us"]
            for label in m:
                if label.startswith("gateway/"):
                    ratios[f"{label}/gateway req/s"] = _ratio(m[label]["rps"], m["gateway"]["rps"])
            out["ratios"] = ratios
            res["scenarios"][sc.name] = out
        if baseline is not None and "cache-hit" in chosen:
            res["paired"] = _paired(
                bench,
                Target("gateway", gateway, env=auth),
                Target(baseline.name, baseline, env=auth),
                conns,
                args.rounds,
                args.duration,
            )
        if tls_servers and "tls" in chosen:
            # Keep-alive TLS costs a few µs per request: on a shared host only a side-by-side
            # measurement resolves it (see Bench.paired), so each TLS contender is also loaded
            # at the same moment as its plain twin.
            pairs = (
                (nginx_tls, proxy),
                (gateway_tls, gateway),
                (gateway_https_up, gateway),
            )
            res["tls_paired"] = {
                f"{a.name} vs {b.name}": _paired(
                    bench,
                    Target(a.name, a, env=auth),
                    Target(b.name, b, env=auth),
                    conns,
                    args.rounds,
                    args.duration,
                )
                for a, b in pairs
            }
        if args.profile is not None:
            res["profile"] = _profile(bench, Target("gateway", gateway, env=auth), args.profile)
        if len(authz_servers) == 2:
            res["revocation"] = _revocation(
                bench, authz_servers[1], Target("load", authz_servers[1], env=auth), probe, db
            )
        if "soak" in chosen:
            res["soak"] = _soak(
                bench, Target("gateway", gateway, env=auth), args.soak_seconds, conns, th
            )
        if "stream" in chosen:
            res["stream"] = _stream(bench, gateway, hit_token, args.stream_bytes)
        res["notes"] = bench.notes
    res["targets"] = _targets_table(res, args)
    res["elapsed_s"] = time.monotonic() - started
    _print_summary(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
        log(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

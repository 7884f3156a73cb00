"""``python -m bench.report RESULTS.json``: the sitting's numbers as the Markdown tables in docs/performance.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["markdown"]


def _f(v: float, digits: int = 0) -> str:
    return f"{v:,.{digits}f}"


def markdown(res: dict[str, Any]) -> str:
    out: list[str] = []
    m = res["machine"]
    s = res["settings"]
    out.append(
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, Python {m['python']}, "
        f"aiohttp {m['aiohttp']}, {m['nginx']}, {m['wrk'].split(' [')[0]}; load average at start "
        f"{m['loadavg_at_start'][0]:.2f}. Servers pinned to CPUs {s['server_cpus'] or 'any'}, "
        f"wrk to {s['wrk_cpus'] or 'any'} ({s['wrk_threads']} thread(s)); gateway and nginx-proxy "
        f"{s['workers']} workers; {s['rounds']} rounds x {s['duration']} s per contender, "
        f"alternating; medians shown.\n"
    )
    hit = res["scenarios"].get("cache-hit", {}).get("ratios", {})
    if "gateway/aiohttp-floor cpu" in hit:
        # Issue 18's two ratios first: the gateway's own cost against its own stack.
        out.append(
            f"**Gateway ÷ aiohttp floor, cache hit: CPU per request "
            f"{hit['gateway/aiohttp-floor cpu']:.2f}x (goal ≤ 1.3x), req/s "
            f"{hit['gateway/aiohttp-floor req/s']:.2f}x (goal ≥ 0.75x).**\n"
        )
    out.append(
        "| scenario | server | req/s | p50 ms | p99 ms | CPU µs/req | upstream CPU µs/req "
        "| store lookups/req |"
    )
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, sc in res["scenarios"].items():
        for label, r in sc["median"].items():
            out.append(
                f"| {name} (c={sc['connections']}) | {label} | {_f(r['rps'])} | "
                f"{r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | "
                f"{_f(r['cpu_us_per_req'], 1)} | {_f(r['upstream_cpu_us_per_req'], 1)} | "
                f"{r['lookups_per_req']:.4f} |"
            )
    out.append("")
    out.append("| ratio | value |")
    out.append("|---|---:|")
    for name, sc in res["scenarios"].items():
        for k, v in sc.get("ratios", {}).items():
            out.append(f"| {name}: {k} | {v:.3f} |")
    out.append("")
    if "paired" in res:
        pa = res["paired"]
        out.append(
            f"Paired before/after: {pa['a']} and {pa['b']} loaded at the same moment "
            f"(c={pa['connections']} split between them), {len(pa['rounds'])} rounds: "
            f"{pa['a']} used {pa['cpu_ratio_median']:.3f} times the CPU per request of {pa['b']} "
            f"(median; rounds {pa['cpu_ratio_min']:.3f} to {pa['cpu_ratio_max']:.3f}).\n"
        )
    if "soak" in res:
        so = res["soak"]
        out.append(
            f"Soak: {so['seconds']} s of cache-hit load at {_f(so['rps'])} req/s "
            f"({_f(so['requests'])} requests); the gateway workers' RSS "
            f"{so['rss_start_mib']:.1f} MiB after warm-up → {so['rss_end_mib']:.1f} MiB at the end "
            f"({so['rss_drift'] * 100:+.1f}%), max {so['rss_max_mib']:.1f} MiB.\n"
        )
    if "stream" in res:
        st = res["stream"]
        out.append(
            f"Stream: {st['bytes']:,} bytes through the gateway in {st['seconds']:.1f} s "
            f"({st['mib_per_s']:.0f} MiB/s), complete: {st['complete']}; peak worker RSS "
            f"{st['rss_peak_max_mib']:.1f} MiB (before: {st['rss_before_max_mib']:.1f} MiB).\n"
        )
    if "revocation" in res:
        rv = res["revocation"]
        shown = ", ".join(f"{x * 1000:.0f}" for x in rv["latencies_s"])
        out.append(
            f"Revocation through {rv['server']} under load: {rv['rounds']} tokens, each refused "
            f"{shown} ms after its revocation was committed (max {rv['max_s'] * 1000:.0f} ms).\n"
        )
    out.append("| target | measured | goal | |")
    out.append("|---|---:|---|---|")
    for row in res["targets"]:
        out.append(
            f"| {row['target']} | {row['value']:.3f} | {row['goal']} | "
            f"{'reference' if row['met'] is None else 'met' if row['met'] else '**not met**'} |"
        )
    if res.get("notes"):
        out.append("")
        out.extend(f"- note: {n}" for n in res["notes"])
    if "profile" in res:
        out.append("")
        out.append(
            f"Profile (py-spy, one worker, {_f(res['profile']['rps'])} req/s while sampled):\n"
        )
        out.append("| own time | frame |")
        out.append("|---:|---|")
        for frame, share in res["profile"]["self"][:15]:
            out.append(f"| {share * 100:.1f}% | `{frame}` |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown(json.loads(Path(sys.argv[1]).read_text())))

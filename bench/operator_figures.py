"""Figures for ``bench/operator_scale.py``: process CPU and memory from /proc, the load average,
percentiles, and the table that puts each goal beside the figure for every fleet size."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def load() -> str:
    return "load " + "/".join(f"{x:.1f}" for x in os.getloadavg())


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def table(results: list[dict[str, Any]], interval: float) -> None:
    rows: list[tuple[str, str, list[str]]] = []

    def row(measure: str, goal: str, cells: list[str]) -> None:
        rows.append((measure, goal, cells))

    row("EdgeGateways created (s, with status; setup)", "",
        [f"{r['setup']:.0f} s via {r['seed']}" for r in results])  # fmt: skip
    row("operator ready after listing the fleet", "", [f"{r['ready']:.1f} s" for r in results])
    row("spec change -> first cohort decided, p50", "", [f"{r['p50']:.2f} s" for r in results])
    row("spec change -> first cohort decided, p99", "< 5 s", [f"{r['p99']:.2f} s" for r in results])
    row("  load during it", "", [r["load_first"] for r in results])
    row("failing evidence -> Aborted, max", "< 2 intervals",
        [f"{r['abort']:.2f} s = {r['abort'] / interval:.2f} int" for r in results])  # fmt: skip
    row("  load during it", "", [r["load_abort"] for r in results])
    row("3-step rollout over every gateway ended", "",
        [f"{r['roll']['ended']} in {r['roll']['seconds']:.0f} s" for r in results])  # fmt: skip
    row("API writes per rollout: decisions + events", "independent of fleet",
        [f"{r['roll']['status']:.0f} + {r['roll']['event']:.0f}" for r in results])  # fmt: skip
    row("  + measured-value refreshes (<= 1 per 10 s)", "",
        [f"{r['roll']['refresh']:.0f} in {r['roll']['seconds']:.0f} s" for r in results])  # fmt: skip
    row("operator CPU per rollout", "<= linear",
        [f"{r['roll']['cpu']:.1f} s" for r in results])  # fmt: skip
    row("  per 1,000 gateways", "", [f"{1000 * r['roll']['cpu'] / r['n']:.2f} s" for r in results])
    row("  mean reconcile (one decision)", "", [f"{r['roll']['tick_ms']:.1f} ms" for r in results])
    row("API server CPU during the rollout", "",
        [f"{r['roll']['apiserver']:.0f} s" for r in results])  # fmt: skip
    row("etcd CPU during the rollout", "", [f"{r['roll']['etcd']:.0f} s" for r in results])
    row("  gateway reports written in it", "",
        [f"{r['roll']['reports']:,} via {r['roll']['via']}" for r in results])  # fmt: skip
    row("  load during it", "", [r["load_roll"] for r in results])
    row("operator peak RSS (VmHWM)", "< 1 GB", [f"{r['hwm']:.0f} MB" for r in results])
    row("operator RSS after the rollout", "", [f"{r['rss']:.0f} MB" for r in results])
    heads = [f"{r['n']:,} gateways" for r in results]
    w0 = max(len(m) for m, _, _ in rows)
    w1 = max(len("goal"), *(len(g) for _, g, _ in rows))
    widths = [max(len(h), *(len(c[i]) for _, _, c in rows)) for i, h in enumerate(heads)]
    print()
    print(f"{'measure':<{w0}}  {'goal':<{w1}}  " + "  ".join(
        f"{h:>{w}}" for h, w in zip(heads, widths, strict=True)))  # fmt: skip
    for measure, goal, cells in rows:
        print(f"{measure:<{w0}}  {goal:<{w1}}  " + "  ".join(
            f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))  # fmt: skip

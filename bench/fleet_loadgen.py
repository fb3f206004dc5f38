"""The fleet API benchmark with the Go load generator (``bench/loadgen``): ``--loadgen go``.

The Python load generator (``bench/fleet_api.py --loadgen python``) costs more CPU per request
than the fleet API it measures; this one keeps one keep-alive mTLS connection per gateway from a
Go process per shard (at most ``SHARD`` gateways each: a process may hold 20,000 descriptors
here), so the 2 cores go to the fleet API and the control plane. What it runs:

1. a control plane, a fleet CA in memory, client certificates issued by ``loadgen certs`` (Go,
   like :meth:`FleetCA.issue_client`: EC P-256, CN = gateway, clientAuth);
2. the EdgeGateways with ``spec.certificateFingerprint`` and a seeded status (``lastSeen``
   spread over the heartbeat interval, as after a while of reporting), through the API server
   (``--seed api``) or straight into etcd (``--seed etcd``, ``bench/seedfleet.py``: set-up only);
   a ModelRelease that has Succeeded (everybody is told stable);
3. ``modelfleet fleet-api --workers W`` and the shards of ``loadgen run``: every gateway opens its
   connection at a bounded rate, then ``--mode longpoll`` (hold ``GET /v1/desired?wait=30`` with
   ``If-None-Match``, ask again at once when answered, like the agent) or ``--mode poll``
   (conditional polls on an open-loop schedule, latency from the scheduled send), and a
   sequenced report every ``--report-interval`` seconds;
4. prints the latencies with the goal beside them, status writes per minute (counted by a watch
   on the API server), CPU of the fleet API, kube-apiserver, etcd and the load generator over the
   measured window, and ``uptime``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelfleet.devcluster import ControlPlane
from modelfleet.enrollment.pki import FleetCA
from modelfleet.kube import KubeClient, load_access

BENCH = Path(__file__).resolve().parent
SOURCES = BENCH / "loadgen"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "modelfleet" / "bench"
SHARD = 15_000  # gateways per load-generator process (20,000 descriptors each here)
PER_WORKER = 16_000  # connections per fleet API process, same limit
GROUP = "modelfleet.dev"
API_VERSION = f"{GROUP}/v1alpha1"


def loadgen_binary() -> Path:
    """``bench/loadgen`` built once per version of its sources, outside the clone."""
    digest = hashlib.sha256()
    for src in [*sorted(SOURCES.glob("*.go")), SOURCES / "go.mod"]:
        digest.update(src.name.encode() + b"\0" + src.read_bytes())
    binary = CACHE / f"loadgen-{digest.hexdigest()[:16]}"
    if binary.exists():
        return binary
    go = shutil.which("go") or "/usr/local/go/bin/go"
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    subprocess.run([go, "build", "-o", str(tmp), "."], cwd=SOURCES, env=env, check=True)
    tmp.replace(binary)
    return binary


def issue_certs(
    binary: Path, ca: FleetCA, work: Path, count: int
) -> tuple[Path, list[dict[str, str]]]:
    """``count`` client certificates ``gw-00000``...: the gateways file and its lines."""
    (work / "ca.key").write_bytes(ca.key_pem)
    out = work / "gateways.jsonl"
    t0 = time.monotonic()
    subprocess.run(
        [str(binary), "certs", "--ca-cert", str(work / "ca.crt"), "--ca-key",
         str(work / "ca.key"), "--count", str(count), "--out", str(out)],
        check=True,
    )  # fmt: skip
    (work / "ca.key").unlink()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    print(f"issued {count} client certificates in {time.monotonic() - t0:.1f}s", flush=True)
    return out, lines


def _status(report: dict[str, Any], seen: float) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seen))
    return {
        "lastSeen": stamp,
        "agentVersion": report["agentVersion"],
        "models": [{**report["models"][0], "since": stamp}],
        "health": [{**report["health"][0], "windowEnd": stamp}],
    }


def gateway_objects(
    ns: str, lines: list[dict[str, str]], report: dict[str, Any], *, spread: float, lead: float
) -> list[dict[str, Any]]:
    """EdgeGateways as enrollment creates them, with a status as after a while of reporting
    (``lastSeen`` spread over ``spread`` seconds before ``lead`` seconds from now)."""
    now = time.time()
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "EdgeGateway",
            "metadata": {"name": g["name"], "namespace": ns, "labels": {"tier": "retail"}},
            "spec": {"certificateFingerprint": g["fingerprint"]},
            "status": _status(report, now + lead - random.uniform(0, spread)),
        }
        for g in lines
    ]


def seed(cp: ControlPlane, objects: list[dict[str, Any]], how: str) -> float:
    """Write the objects: through the API server (create, then a status merge-patch) or, with
    ``how == "etcd"``, straight into etcd (set-up only). Seconds taken."""
    sys.path.insert(0, str(BENCH))
    from seedfleet import create_through_api, seed_objects  # type: ignore[import-not-found]

    done = [0]

    def progress(n: int) -> None:
        last, done[0] = done[0], n
        if n // 10_000 != last // 10_000 or n == len(objects):
            print(f"seeded {n}/{len(objects)} EdgeGateways ({how})", flush=True)

    if how == "etcd":
        # batched: nothing watches EdgeGateways yet (the fleet API and the bench's watch start
        # after the seeding), which is what seed_objects asks of a batched write
        return float(seed_objects(cp, objects, concurrency=8, progress=progress, batch=64))

    async def main() -> float:
        async with KubeClient(load_access(cp.kubeconfig), connections=64) as kube:
            return float(await create_through_api(kube, objects, progress=progress))

    return asyncio.run(main())


def run_shards(
    binary: Path, gw_file: Path, ca: Path, port: int, *, total: int, args: argparse.Namespace,
    report_file: Path, on_start: Callable[[float, list[int]], None],
) -> dict[str, Any]:  # fmt: skip
    """The load generator in ``ceil(total / SHARD)`` processes starting their schedule together;
    their summaries merged. ``on_start(seconds_until_measuring, pids)`` once all are connected."""
    shards = max(1, math.ceil(total / SHARD))
    rate = args.rate if args.rate else total / 30.0
    procs = []
    for i in range(shards):
        cmd = [
            str(binary), "run", "--gateways", str(gw_file), "--ca", str(ca),
            "--addr", f"127.0.0.1:{port}", "--shard", str(i), "--shards", str(shards),
            "--total", str(total), "--mode", args.mode, "--wait", str(args.wait),
            "--rate", str(rate), "--duration", f"{args.duration}s", "--warmup", f"{args.warmup}s",
            "--report-interval", f"{args.report_interval}s", "--report", str(report_file),
            "--connect-rate", str(args.connect_rate / shards), "--connect-concurrency", "32",
            "--source-ips", "8" if total > 20_000 else "0", "--sync",
        ]  # fmt: skip
        env = {**os.environ, "GOMAXPROCS": "2", "GOGC": "100"}
        procs.append(
            subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        )
    connected = []
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited ({p.wait()}) before connecting")
        connected.append(json.loads(line))
    start = time.time() + 1.0
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(f"start {start:.3f}\n")
        p.stdin.flush()
    on_start(start - time.time() + args.warmup, [p.pid for p in procs])
    parts = []
    try:
        for p in procs:
            assert p.stdout is not None
            out = p.stdout.read().strip().splitlines()
            if p.wait() != 0 or not out:
                raise RuntimeError(f"load generator {p.pid} exited with {p.returncode}")
            parts.append(json.loads(out[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    merged = merge(parts)
    merged["connect_s"] = max(c["seconds"] for c in connected)
    merged["shards"] = shards
    return merged


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Shard summaries into one: counts summed, latency histograms merged."""
    out: dict[str, Any] = {
        "codes": {}, "errors": {}, "first_errors": {}, "latency": {}, "write_reasons_in_window": {}
    }  # fmt: skip
    for key in ("gateways", "connected", "connect_failed", "completed", "early", "changed",
                "reconnects", "reports_written", "written_in_window"):  # fmt: skip
        out[key] = sum(int(p.get(key, 0)) for p in parts)
    out["start_late_s"] = max(float(p.get("start_late_s", 0.0)) for p in parts)
    buckets: dict[str, dict[float, float]] = {}
    maxes: dict[str, float] = {}
    for p in parts:
        for field in ("codes", "errors", "write_reasons_in_window"):
            for k, v in (p.get(field) or {}).items():
                out[field][k] = out[field].get(k, 0) + v
        out["first_errors"].update(p.get("first_errors") or {})
        for kind, lat in (p.get("latency") or {}).items():
            b = buckets.setdefault(kind, {})
            for upper, count in lat["buckets_ms"]:
                b[upper] = b.get(upper, 0) + count
            maxes[kind] = max(maxes.get(kind, 0.0), lat["max_ms"])
    for kind, b in buckets.items():
        out["latency"][kind] = {
            "count": int(sum(b.values())), "p50_ms": _quantile(b, 0.50, maxes[kind]),
            "p90_ms": _quantile(b, 0.90, maxes[kind]), "p99_ms": _quantile(b, 0.99, maxes[kind]),
            "max_ms": maxes[kind],
        }  # fmt: skip
    return out


def _quantile(buckets: dict[float, float], q: float, top: float) -> float:
    total = sum(buckets.values())
    rank = math.ceil(q * total)
    seen = 0.0
    for upper in sorted(buckets):
        seen += buckets[upper]
        if seen >= rank:
            return min(upper, top)
    return top


def uptime() -> str:
    return subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()


def run(args: argparse.Namespace, fa: Any) -> int:
    """``bench/fleet_api.py --loadgen go``; ``fa`` is that module (fleet API start, observe)."""
    binary = loadgen_binary()
    work = Path(tempfile.mkdtemp(prefix="modelfleet-bench-go-"))
    n = args.gateways
    workers = args.workers or max(2, math.ceil(n / PER_WORKER))
    cp = ControlPlane.from_environment()
    cp.start()
    procs: list[subprocess.Popen[Any]] = []
    try:
        ns = "bench"
        cp.create_namespace(ns)
        ca = FleetCA.create()
        tls = fa.fleet_tls(ca, work)
        gw_file, lines = issue_certs(binary, ca, work, n)
        report = fa.report_body("1.0.0", fa.STABLE)
        report_file = work / "report.json"
        report_file.write_text(json.dumps(report))
        # the window opens after connecting (estimated) and the warm-up; lastSeen spread over
        # the fleet API's heartbeat interval (180 s) ending one report interval before it
        connect_est = n / args.connect_rate + 30.0
        seed_est = n / (3000.0 if args.seed == "etcd" else 150.0)
        lead = seed_est + connect_est + args.warmup - args.report_interval
        objects = gateway_objects(ns, lines, report, spread=180.0, lead=lead)
        seed_s = seed(cp, objects, args.seed)
        del objects
        print(f"seeded {n} EdgeGateways with status in {seed_s:.1f}s ({n / seed_s:.0f}/s, "
              f"{args.seed})", flush=True)  # fmt: skip
        fa.create_release(cp, ns)
        proc, port = _start_api(
            fa, cp, ns, tls, workers=workers, work=work, ready_timeout=max(120.0, n / 100.0)
        )  # fmt: skip
        procs.append(proc)
        observed: dict[str, Any] = {}
        before = uptime()

        def on_start(until_measure: float, pids: list[int]) -> None:
            others = {**fa.control_pids(cp), **{f"loadgen{i}": pid for i, pid in enumerate(pids)}}
            observed["r"] = fa.observe(
                cp.kubeconfig, ns, proc.pid, until_measure, args.duration, others=others
            )
            observed["shards"] = len(pids)

        res = run_shards(
            binary, gw_file, tls["ca"], port, total=n, args=args, report_file=report_file,
            on_start=on_start,
        )  # fmt: skip
        after = uptime()
        obs = observed["r"]
        thread: threading.Thread = obs["_thread"]
        thread.join(timeout=120)
        fa.stop(proc)
    finally:
        for p in procs:
            fa.stop(p)
        cp.stop()
        keep = CACHE / "last-run"  # the fleet API's log, for what the summary cannot say
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True, exist_ok=True)
        for log in work.glob("api-*.log"):
            shutil.copy(log, keep / log.name)
        shutil.rmtree(work, ignore_errors=True)
    _print(args, res, obs, workers=workers, before=before, after=after)
    return 0


def _start_api(
    fa: Any, cp: ControlPlane, ns: str, tls: dict[str, Path], *, workers: int, work: Path,
    ready_timeout: float,
) -> tuple[subprocess.Popen[bytes], int]:  # fmt: skip
    """The fleet API; tried again when a port picked as free was taken meanwhile."""
    for attempt in range(3):
        try:
            log = work / f"api-{attempt}.log"
            return fa.start_fleet_api(cp, ns, tls, workers, log, ready_timeout=ready_timeout)  # type: ignore[no-any-return]
        except RuntimeError as exc:
            if "address already in use" not in str(exc) or attempt == 2:
                raise
            print("fleet API: a port was taken meanwhile; again", flush=True)
    raise AssertionError("unreachable")


def _cores(obs: dict[str, Any], name: str, duration: float) -> float:
    return float(obs.get(f"{name}_cpu_s", float("nan"))) / duration


def _print(
    args: argparse.Namespace, res: dict[str, Any], obs: dict[str, Any], *, workers: int,
    before: str, after: str,
) -> None:  # fmt: skip
    d = args.duration
    lat = res["latency"]
    loadgen_cpu = sum(v for k, v in obs.items() if k.startswith("loadgen") and k.endswith("_cpu_s"))
    print()
    print(json.dumps(res, sort_keys=True))
    print()
    print(f"fleet API, {args.gateways} gateways, {workers} fleet API processes, mode "
          f"{args.mode}" + (f" (?wait={args.wait})" if args.mode == "longpoll" else "")
          + f", reports every {args.report_interval:.0f}s, {d:.0f}s measured after "
          f"{args.warmup:.0f}s warm-up, {os.cpu_count()} cores, {res['shards']} load-generator "
          "processes")  # fmt: skip
    print(f"connections: {res['connected']} open in {res['connect_s']:.0f}s, "
          f"{res['connect_failed']} failed; reconnects {res['reconnects']}; schedule started "
          f"{res['start_late_s']:.1f}s late")  # fmt: skip
    print(f"answers in the window: {res['completed']} ({res['completed'] / d:.0f}/s); codes "
          f"{res['codes']}; errors {res['errors'] or 'none'}"
          + (f" (first: {res['first_errors']})" if res["first_errors"] else ""))  # fmt: skip

    def row(kind: str, what: str, goal: str = "") -> None:
        h = lat.get(kind)
        if not h:
            print(f"{what}: none in the window")
            return
        line = (f"{what}: n={h['count']} p50 {h['p50_ms']:.1f} ms, p90 {h['p90_ms']:.1f} ms, "
                f"p99 {h['p99_ms']:.1f} ms, max {h['max_ms']:.1f} ms")  # fmt: skip
        if goal:
            line += f"   goal p99 < 50 ms: {'met' if h['p99_ms'] < 50 else 'MISSED'}"
        print(line)

    if args.mode == "longpoll":
        row("longpoll_late", "long poll, answer after the promised hold (lateness)", goal="y")
        print(f"long polls answered early (desired state changed or let go): {res['early']} "
              f"({res['changed']} with 200)")  # fmt: skip
    else:
        row("poll", "conditional poll, from the scheduled send", goal="y")
    row("report", "report" + (" (from its send)" if args.mode == "longpoll" else ""))
    writes = obs.get("writes", 0) * 60.0 / d
    print(f"EdgeGateway status writes (API server watch): {writes:.0f}/min "
          f"({writes / max(1, args.gateways) * 60:.2f} per gateway per hour); reports answered "
          f"\"written\" in the window: {res['written_in_window']} "
          f"({res['written_in_window'] * 60.0 / d:.0f}/min), why: {res['write_reasons_in_window']}")  # fmt: skip
    print(f"CPU over the window (cores): fleet API {obs['cpu_s'] / d:.2f} "
          f"({obs['cpu_s'] / max(1, res['completed']) * 1e6:.0f} µs per answer), kube-apiserver "
          f"{_cores(obs, 'kube-apiserver', d):.2f}, etcd {_cores(obs, 'etcd', d):.2f}, "
          f"load generator {loadgen_cpu / d:.2f}")  # fmt: skip
    if obs.get("error"):
        print(f"observer error: {obs['error']}")
    print(f"uptime before: {before}")
    print(f"uptime after:  {after}")

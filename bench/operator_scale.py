"""Operator scale benchmark: one command, a real API server, up to 100,000 EdgeGateways.

    .venv/bin/python bench/operator_scale.py --gateways 100000
    .venv/bin/python bench/operator_scale.py --curve 1000,10000,100000

Starts etcd + kube-apiserver (modelfleet.devcluster.ControlPlane), creates the gateways with
their status (``--seed etcd``, the default: written straight into etcd by bench/seedfleet.py,
setup only, about 40 times faster; ``--seed api``: a POST, then a status through the status
subresource, as the fleet API writes it) and, per fleet size (the fleet grows from one size to the next), starts a fresh operator
subprocess and measures: spec change → first cohort decided in status (p50 / p99 over
``--releases`` new releases); one canary gateway's failed activation (``maxFailedGateways: 0``)
→ ``Aborted``, in seconds and timer intervals; a 3-step rollout over every gateway, each told
gateway reporting Active and healthy (through the API server's status subresource, or with
``--report-via etcd`` straight into etcd; the operator sees each through its watch either way;
who is told what is recomputed only when the release's step changes): the operator's API writes (decisions, measured-value
refreshes, events, from its metrics port), its CPU seconds, the API server's and etcd's CPU
seconds, the mean reconciliation time; the operator's RSS (peak and now) and the time to list
the fleet. The load average is printed beside every figure; the last table gives each goal
beside the figure for every size. ``--operator-log FILE`` keeps the operator's debug log (with
timestamps: where a release's time went). ``--in-process N`` (bench/operator_inprocess.py) measures the
operator's data path at N gateways without an API server. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

import yaml  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from modelfleet.api import parse_release  # noqa: E402
from modelfleet.core import Gateway  # noqa: E402
from modelfleet.core.desired import Assigner  # noqa: E402
from modelfleet.devcluster import ControlPlane, free_port  # noqa: E402
from modelfleet.kube import KubeClient, custom_path, load_access  # noqa: E402
from modelfleet.trust import digest_file, sign_model  # noqa: E402
from operator_figures import load, now_iso, pct, proc_cpu, proc_mem, table  # noqa: E402
from seedfleet import create_through_api, gateway, seed_objects  # noqa: E402

G, V = "modelfleet.dev", "v1alpha1"
NS = "bench"
GW, MR = "edgegateways", "modelreleases"
BASE_DIGEST = "sha256:" + "b" * 64


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="modelfleet-bench-"))
        self.cp = ControlPlane.from_environment()
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.count = 0  # gateways created so far
        self.kube: KubeClient | None = None
        self.seq = 0
        self.created = now_iso()[:19] + "Z"

    async def start(self) -> None:
        self.cp.start()
        self.cp.create_namespace(NS)
        pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        policy = {
            "apiVersion": f"{G}/{V}",
            "kind": "TrustPolicy",
            "metadata": {"name": "bench-signers"},
            "spec": {"authorities": [{"name": "bench-key", "key": {"data": pem.decode()}}]},
        }
        self.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(policy))
        self.kube = await KubeClient(load_access(self.cp.kubeconfig), connections=48).__aenter__()
        # Outside every timed span: the bench's own first signature (importing and initialising
        # the signing stack, 2-4 s under load), and the API server's storage for ModelReleases,
        # which it creates on the first request for them (answering 429 "storage is
        # (re)initializing" meanwhile); neither is the operator's cost.
        self.artifact("1.0.0")
        await self.k.list_all(custom_path(MR, NS))

    @property
    def k(self) -> KubeClient:
        assert self.kube is not None
        return self.kube

    def server_cpu(self) -> dict[str, float]:
        out = {}
        for name in ("apiserver", "etcd"):
            proc = getattr(self.cp, name)
            out[name] = proc_cpu(proc.pid) if proc is not None else float("nan")
        return out

    async def grow(self, total: int) -> float:
        """Create gateways up to ``total`` with their status; seconds taken."""
        if self.args.seed == "etcd":
            return await self.seed(range(self.count, total), self.status("base"), "seeded")
        step = 2000
        first = self.count

        def progress(n: int) -> None:
            if n % step == 0 or first + n == total:
                print(f"  {first + n} gateways ({load()})", flush=True)

        objects = (gateway(NS, i, self.status("base")) for i in range(first, total))
        seconds = await create_through_api(self.k, objects, concurrency=self.args.concurrency,
                                           progress=progress)  # fmt: skip
        self.count = max(self.count, total)
        return seconds

    async def seed(self, which: range, status: dict[str, Any], verb: str) -> float:
        """Write gateways ``which`` with ``status`` straight into etcd (bench/seedfleet.py)."""
        step = max(2000, len(which) // 10)
        marks = {which.start + k for k in range(step, len(which), step)}

        def progress(n: int) -> None:
            if which.start + n in marks:
                print(f"  {which.start + n:,} gateways {verb} ({load()})", flush=True)

        objects = (gateway(NS, i, status, self.created) for i in which)
        seconds = await asyncio.to_thread(seed_objects, self.cp, objects,
                                          concurrency=self.args.concurrency, progress=progress)  # fmt: skip
        self.count = max(self.count, which.stop)
        return seconds

    def status(
        self, model: str, version: str = "1.0.0", digest: str = BASE_DIGEST, state: str = "Active"
    ) -> dict[str, Any]:
        at = now_iso()
        models = [{"model": "base", "version": "1.0.0", "digest": BASE_DIGEST, "state": "Active",
                   "slot": "A", "since": at}]  # fmt: skip
        health = [{"model": "base", "version": "1.0.0", "window": "5m", "windowEnd": at,
                   "requests": 1000, "errors": 0, "latencyP95Ms": 30}]  # fmt: skip
        if model != "base":
            models.append({"model": model, "version": version, "digest": digest,
                           "state": state, "slot": "B", "since": at})  # fmt: skip
            health.append({"model": model, "version": version, "window": "5m",
                           "windowEnd": at, "requests": 1000, "errors": 0,
                           "latencyP95Ms": 40})  # fmt: skip
        return {"lastSeen": at, "agentVersion": "bench", "models": models, "health": health}

    def start_operator(self) -> float:
        self.metrics_port = free_port()
        liveness = free_port()
        env = dict(self.cp.env, PYTHONPATH=str(ROOT / "operator"))
        path = Path(self.args.operator_log) if self.args.operator_log else self.tmp / "operator.log"
        log = path.open("ab")
        verbose = ["-vv"] if self.args.operator_log else []
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelfleet", *verbose, "operator", "--namespace", NS,
             "--interval", str(self.args.interval), "--kubeconfig", str(self.cp.kubeconfig),
             "--metrics-port", str(self.metrics_port), "--metrics-host", "127.0.0.1",
             "--liveness", f"http://127.0.0.1:{liveness}/healthz",
             "--allow-file-root", str(self.tmp)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{liveness}/readyz", timeout=1):
                    return time.monotonic() - started
            except OSError:
                time.sleep(0.5)
        raise SystemExit(f"operator did not become ready; see {path}")

    def stop_operator(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def stop(self) -> None:
        self.stop_operator()
        self.cp.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def scrape(self) -> dict[str, float]:
        """Counters of the operator's metrics port: writes by kind, reconcile time."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        out = {"status": 0.0, "refresh": 0.0, "event": 0.0}
        for line in text.splitlines():
            if line.startswith("modelfleet_operator_api_writes_total{"):
                out[line.split('kind="', 1)[1].split('"', 1)[0]] = float(line.rsplit(" ", 1)[1])
            elif line.startswith("modelfleet_operator_reconcile_seconds_sum"):
                out["reconcile_sum"] = float(line.rsplit(" ", 1)[1])
            elif line.startswith("modelfleet_operator_reconcile_seconds_count"):
                out["reconcile_count"] = float(line.rsplit(" ", 1)[1])
        return out

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def artifact(self, version: str) -> dict[str, Any]:
        if version not in self.artifacts:
            folder = self.tmp / version
            folder.mkdir()
            model = folder / "model.bin"
            model.write_bytes(f"bench model {version}\n".encode() * 4096)
            sig = folder / "model.sig"
            sign_model(model, sig, private_key=self.key)
            self.artifacts[version] = {"uri": model.as_uri(), "digest": digest_file(model),
                                       "signature": {"uri": sig.as_uri()}}  # fmt: skip
        return self.artifacts[version]

    def release(self, name: str, model: str, steps: list[dict[str, Any]],
                selector: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        spec: dict[str, Any] = {
            "model": model, "version": "1.0.0", "artifact": self.artifact("1.0.0"),
            "trustPolicy": "bench-signers",
            "rollout": {"steps": steps, "gates": {"maxErrorRate": 0.05,
                                                  "minReportingRatio": 0.9}},
        }  # fmt: skip
        if selector:
            spec["gateways"] = {"selector": {"matchLabels": selector}}
        return {"apiVersion": f"{G}/{V}", "kind": "ModelRelease",
                "metadata": {"name": name}, "spec": spec}  # fmt: skip

    async def rstatus(self, name: str) -> dict[str, Any]:
        obj = await self.k.get(custom_path(MR, NS, name))
        return obj.get("status") or {}

    async def wait(self, name: str, check: Any, timeout: float = 900, every: float = 0.05) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(await self.rstatus(name)):
                return time.monotonic()
            await asyncio.sleep(every)
        raise SystemExit(f"{name}: timed out; last status {str(await self.rstatus(name))[:400]}")

    async def told(self, model: str) -> dict[str, str]:
        """Gateway name → the digest it is told for ``model`` (desired_state, as the fleet API)."""
        items, _ = await self.k.list_all(custom_path(MR, NS))
        assigner = Assigner([parse_release(r) for r in items])
        out = {}
        labels: dict[str, str] = {}
        small = {"small": "true"}
        for i in range(self.count):
            name = f"gw-{i:06d}"
            a = assigner.assignment(Gateway(name, NS, small if i < 1000 else labels), model)
            if a is not None and a.snapshot is not None:
                out[name] = a.snapshot.digest
        return out

    async def report(
        self, names: list[str], model: str, digest: str, state: str = "Active"
    ) -> None:
        """Each gateway in ``names`` reports ``model`` in ``state`` (and healthy)."""
        if self.args.report_via == "etcd":
            status = self.status(model, "1.0.0", digest, state)
            objects = (gateway(NS, int(n[3:]), status, self.created) for n in names)
            await asyncio.to_thread(seed_objects, self.cp, objects,
                                    concurrency=self.args.concurrency)  # fmt: skip
            return
        gate = asyncio.Semaphore(self.args.concurrency)
        done = 0
        every = 10_000 if len(names) >= 20_000 else len(names) + 1

        async def one(name: str) -> None:
            nonlocal done
            async with gate:
                status = self.status(model, "1.0.0", digest, state)
                await self.k.merge_patch_status(GW, NS, name, {"status": status})
            done += 1
            if done % every == 0:
                print(f"    {done:,} of {len(names):,} reports written ({load()})", flush=True)

        await asyncio.gather(*(one(n) for n in names))

    async def first_cohort(self, rounds: int) -> list[float]:
        steps = [{"name": "canary", "percent": 5, "bake": "1h"}, {"name": "all", "percent": 100}]
        out = []
        for _ in range(rounds):
            self.seq += 1
            name = f"latency-{self.seq}"
            started = time.monotonic()
            await self.k.create(custom_path(MR, NS), self.release(name, f"m{self.seq}", steps))
            done = await self.wait(name, lambda s: s.get("phase") in ("Progressing", "Paused")
                                   and bool((s.get("rollout") or {}).get("cohorts")))  # fmt: skip
            out.append(done - started)
            await self.k.delete(custom_path(MR, NS, name))
        return out

    async def abort(self, rounds: int) -> list[float]:
        steps = [{"name": "canary", "percent": 2, "bake": "1h"}, {"name": "all", "percent": 100}]
        out = []
        for _ in range(rounds):
            self.seq += 1
            name, model = f"abort-{self.seq}", f"abort{self.seq}"
            await self.k.create(custom_path(MR, NS), self.release(name, model, steps))
            await self.wait(name, lambda s: s.get("phase") in ("Progressing", "Paused"))
            told = await self.told(model)
            digest = self.artifact("1.0.0")["digest"]
            canary = [n for n, d in told.items() if d == digest]
            await self.report(canary, model, digest)
            await self.wait(name, lambda s: ((s.get("rollout") or {}).get("gates") or {})
                            .get("result") == "Pass")  # fmt: skip
            await self.report(canary[:1], model, digest, state="Failed")  # the evidence
            evidence = time.monotonic()
            done = await self.wait(name, lambda s: s.get("phase") == "Aborted", every=0.02)
            out.append(done - evidence)
            await self.k.delete(custom_path(MR, NS, name))
        return out

    async def rollout(self) -> dict[str, float]:
        """A 3-step rollout over every gateway, each told gateway reporting Active and healthy."""
        steps = [{"name": "canary", "percent": 5, "bake": "2s"},
                 {"name": "half", "percent": 50, "bake": "2s"},
                 {"name": "all", "percent": 100, "bake": "2s"}]  # fmt: skip
        self.seq += 1
        name, model = f"rollout-{self.seq}", f"fleet{self.seq}"
        m0, cpu0, srv0, t0 = self.scrape(), proc_cpu(self.pid), self.server_cpu(), time.monotonic()
        await self.k.create(custom_path(MR, NS), self.release(name, model, steps))
        reported: set[str] = set()
        digest = self.artifact("1.0.0")["digest"]
        idle: list[float | None] = [None]  # since when every told gateway has reported

        async def agents() -> None:
            """The told gateways report, as agents would; ``told`` (a walk over every gateway)
            is recomputed only when the release's step changes."""
            step = None
            while True:
                now = (await self.rstatus(name)).get("rollout") or {}
                if now.get("step") != step:
                    step = now.get("step")
                    idle[0] = None
                    started = time.monotonic()
                    fresh = [n for n, d in (await self.told(model)).items()
                             if d == digest and n not in reported]  # fmt: skip
                    print(f"  step {step}: {len(fresh):,} more gateways told (computed in "
                          f"{time.monotonic() - started:.1f} s), reporting via "
                          f"{self.args.report_via} ({load()})", flush=True)  # fmt: skip
                    if fresh:
                        await self.report(fresh, model, digest)
                        reported.update(fresh)
                        print(f"  step {step}: {len(reported):,} reported "
                              f"({time.monotonic() - t0:.0f} s into the rollout, {load()})",
                              flush=True)  # fmt: skip
                    idle[0] = time.monotonic()
                await asyncio.sleep(0.5)

        ended = ""

        def done(s: dict[str, Any]) -> bool:
            nonlocal ended
            phase = s.get("phase")
            stuck = phase == "Paused" and idle[0] is not None and time.monotonic() > idle[0] + 60
            if phase in ("Aborted", "Failed") or stuck:
                # Paused while reports are still being written is normal (a step that waited
                # longer than the grace for its reports resumes when they arrive). Paused 60 s
                # after every told gateway reported: each gateway reports once here, and a
                # report older than the report max age (10 min) no longer counts.
                ended = str(phase)
                print(f"  {name}: {ended} after {time.monotonic() - t0:.0f} s "
                      f"({str(s.get('message', ''))[:300]}); the rollout's figures below are up "
                      "to here. If reports went stale (older than 10 min), use --report-via etcd",
                      flush=True)  # fmt: skip
                return True
            if s.get("phase") == "Succeeded":
                ended = "Succeeded"
            return bool(ended)

        task = asyncio.ensure_future(agents())
        try:
            await self.wait(name, done, timeout=3600, every=0.5)
        finally:
            task.cancel()
        m1, srv1 = self.scrape(), self.server_cpu()
        ticks = m1.get("reconcile_count", 0) - m0.get("reconcile_count", 0)
        busy = m1.get("reconcile_sum", 0) - m0.get("reconcile_sum", 0)
        await self.k.delete(custom_path(MR, NS, name))
        return {
            **{k: m1[k] - m0.get(k, 0) for k in ("status", "refresh", "event")},
            "cpu": proc_cpu(self.pid) - cpu0,
            "apiserver": srv1["apiserver"] - srv0["apiserver"],
            "etcd": srv1["etcd"] - srv0["etcd"],
            "seconds": time.monotonic() - t0,
            "tick_ms": 1000 * busy / ticks if ticks else float("nan"),
            "reports": len(reported),
            "via": self.args.report_via,
            "ended": ended,
        }


async def one_size(bench: Bench, n: int) -> dict[str, Any]:
    args = bench.args
    print(f"== {n:,} gateways ({load()})", flush=True)
    setup = await bench.grow(n)
    print(f"setup: {setup:.0f} s to reach {n:,} EdgeGateways, via {args.seed} ({load()})",
          flush=True)  # fmt: skip
    ready = bench.start_operator()
    r: dict[str, Any] = {"n": n, "setup": setup, "seed": args.seed, "ready": ready,
                         "load_ready": load()}  # fmt: skip
    print(f"operator ready (listed the fleet) in {ready:.1f} s ({load()})", flush=True)
    lat = await bench.first_cohort(args.releases)
    r.update(p50=pct(lat, 0.5), p99=pct(lat, 0.99), load_first=load())
    print(f"first cohort: {[round(x, 2) for x in lat]} ({load()})", flush=True)
    aborts = await bench.abort(args.abort_rounds)
    r.update(abort=max(aborts), abort_median=statistics.median(aborts), load_abort=load())
    print(f"abort: {[round(x, 2) for x in aborts]} ({load()})", flush=True)
    roll = await bench.rollout()
    r.update(roll=roll, load_roll=load())
    print(f"rollout: {roll} ({load()})", flush=True)
    r.update(hwm=proc_mem(bench.pid, "VmHWM"), rss=proc_mem(bench.pid, "VmRSS"))
    bench.stop_operator()
    return r


async def run(args: argparse.Namespace, sizes: list[int]) -> int:
    bench = Bench(args)
    results = []
    try:
        await bench.start()
        for n in sizes:
            results.append(await one_size(bench, n))
    finally:
        if bench.kube is not None:
            await bench.kube.__aexit__(None, None, None)
        bench.stop()
    table(results, args.interval)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=10_000)
    parser.add_argument("--curve", help="fleet sizes, e.g. 1000,10000,100000 (one run each)")
    parser.add_argument("--releases", type=int, default=10)
    parser.add_argument("--abort-rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=48, help="API requests in flight")
    parser.add_argument("--seed", choices=("etcd", "api"), default="etcd",
                        help="create the gateways straight into etcd (setup only) or through "
                             "the API server")  # fmt: skip
    parser.add_argument("--report-via", choices=("api", "etcd"), default="api",
                        help="where the rollout's gateway reports are written: the API "
                             "server's status subresource, or straight into etcd (at 100,000 on "
                             "2 cores the API path takes longer than the 10 min a report "
                             "counts)")  # fmt: skip
    parser.add_argument(
        "--in-process",
        type=int,
        metavar="N",
        help="the operator's data path at N gateways, without an API server",
    )
    parser.add_argument("--events", type=int, default=10_000, help="reports, with --in-process")
    parser.add_argument("--operator-log", metavar="FILE",
                        help="keep the operator's log here, at debug level")  # fmt: skip
    args = parser.parse_args()
    if args.in_process:
        from operator_inprocess import in_process  # bench/: the script's own folder

        return in_process(args.in_process, args.events)
    sizes = sorted(int(s) for s in args.curve.split(",")) if args.curve else [args.gateways]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the cluster on kill too
    return asyncio.run(run(args, sizes))


if __name__ == "__main__":
    sys.exit(main())

"""Operator scale benchmark: one command, a real API server, 10,000 EdgeGateways.

    .venv/bin/python bench/operator_scale.py [--gateways 10000] [--releases 20] [--interval 1]

Starts etcd + kube-apiserver (modelfleet.devcluster.ControlPlane), creates the gateways, runs
``python -m modelfleet operator`` as a subprocess, and measures:

* spec change → first cohort decided in status (a new ModelRelease until ``status.rollout``
  carries cohort counts with phase Progressing): p50 / p99 over ``--releases`` releases;
* a failed gate's evidence (one canary gateway's report of a failed activation, with
  ``maxFailedGateways: 0``, written to its EdgeGateway status) → ``Aborted`` in status, in
  seconds and in timer intervals;
* API writes issued by the operator per rollout (status patches + events, from its metrics
  port), for a release covering 1,000 gateways and one covering all 10,000 (with every gateway
  in a cohort reporting Active and healthy);
* the operator's peak RSS (VmHWM) and CPU seconds per rollout (from /proc).

Prints a table. Nothing here asserts: figures are for people.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

import yaml  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from kubernetes import client as k8s  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402

from modelfleet.api import parse_release  # noqa: E402
from modelfleet.core import Gateway, desired_state  # noqa: E402
from modelfleet.devcluster import ControlPlane, free_port  # noqa: E402
from modelfleet.trust import digest_file, sign_model  # noqa: E402

G, V = "modelfleet.dev", "v1alpha1"
NS = "bench"
SMALL = "small"  # label on the first 1,000 gateways


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="modelfleet-bench-"))
        self.cp = ControlPlane.from_environment()
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.artifacts: dict[str, tuple[Path, Path, str]] = {}
        self.names = [f"gw-{i:05d}" for i in range(args.gateways)]
        self.labels = {n: ({SMALL: "true"} if i < 1000 else {}) for i, n in enumerate(self.names)}
        self.pool = ThreadPoolExecutor(max_workers=8)

    # ------------------------------------------------------------------ setup

    def start(self) -> None:
        self.cp.start()
        self.cp.create_namespace(NS)
        api_client = k8s_config.new_client_from_config(config_file=str(self.cp.kubeconfig))
        api_client.configuration.connection_pool_maxsize = 16
        self.custom = k8s.CustomObjectsApi(api_client)
        pem = (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        policy = {
            "apiVersion": f"{G}/{V}",
            "kind": "TrustPolicy",
            "metadata": {"name": "bench-signers"},
            "spec": {"authorities": [{"name": "bench-key", "key": {"data": pem}}]},
        }
        self.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(policy))

    def artifact(self, version: str) -> dict[str, Any]:
        if version not in self.artifacts:
            folder = self.tmp / version
            folder.mkdir()
            model = folder / "model.bin"
            model.write_bytes(f"bench model {version}\n".encode() * 4096)
            sig = folder / "model.sig"
            sign_model(model, sig, private_key=self.key)
            self.artifacts[version] = (model, sig, digest_file(model))
        model, sig, digest = self.artifacts[version]
        return {"uri": model.as_uri(), "digest": digest, "signature": {"uri": sig.as_uri()}}

    def create_gateways(self) -> float:
        started = time.perf_counter()

        def create(name: str) -> None:
            body = {
                "apiVersion": f"{G}/{V}",
                "kind": "EdgeGateway",
                "metadata": {"name": name, "labels": self.labels[name]},
                "spec": {"site": "bench"},
            }
            self.custom.create_namespaced_custom_object(G, V, NS, "edgegateways", body)

        list(self.pool.map(create, self.names))
        return time.perf_counter() - started

    def start_operator(self) -> None:
        self.metrics_port = free_port()
        liveness = free_port()
        env = dict(self.cp.env, PYTHONPATH=str(ROOT / "operator"))
        log = (self.tmp / "operator.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelfleet", "operator", "--namespace", NS,
             "--interval", str(self.args.interval), "--kubeconfig", str(self.cp.kubeconfig),
             "--metrics-port", str(self.metrics_port), "--metrics-host", "127.0.0.1",
             "--liveness", f"http://127.0.0.1:{liveness}/healthz",
             "--allow-file-root", str(self.tmp)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.5)
        raise SystemExit("operator did not become ready; see " + str(self.tmp / "operator.log"))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.cp.stop()
        self.pool.shutdown()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ probes

    def writes(self) -> dict[str, int]:
        """The operator's API writes so far, by kind (status, refresh, event)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as resp:
            text = resp.read().decode()
        out = {"status": 0, "refresh": 0, "event": 0}
        for line in text.splitlines():
            if line.startswith("modelfleet_operator_api_writes_total{"):
                kind = line.split('kind="', 1)[1].split('"', 1)[0]
                out[kind] = int(float(line.rsplit(" ", 1)[1]))
        return out

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def status(self, name: str) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(G, V, NS, "modelreleases", name)
        return obj.get("status") or {}

    def wait(self, name: str, check: Any, timeout: float = 300, every: float = 0.05) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status(name)
            if check(st):
                return time.monotonic()
            time.sleep(every)
        raise SystemExit(f"{name}: timed out; last status {json.dumps(self.status(name))[:400]}")

    def release(  # noqa: PLR0917
        self,
        name: str,
        model: str,
        version: str,
        steps: list[dict[str, Any]],
        selector: dict[str, str] | None = None,
        gates: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "model": model,
            "version": version,
            "artifact": self.artifact(version),
            "trustPolicy": "bench-signers",
            "rollout": {
                "steps": steps,
                "gates": gates or {"maxErrorRate": 0.05, "minReportingRatio": 0.9},
            },
        }
        if selector:
            spec["gateways"] = {"selector": {"matchLabels": selector}}
        return {"apiVersion": f"{G}/{V}", "kind": "ModelRelease",
                "metadata": {"name": name}, "spec": spec}  # fmt: skip

    def apply(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        try:
            current = self.custom.get_namespaced_custom_object(G, V, NS, "modelreleases", name)
        except k8s.ApiException:
            self.custom.create_namespaced_custom_object(G, V, NS, "modelreleases", body)
            return
        self.custom.patch_namespaced_custom_object(
            G, V, NS, "modelreleases", name, {"spec": body["spec"]}
        )
        _ = current

    # ------------------------------------------------------------------ gateway reports

    def report(self, names: list[str], model: str, told: dict[str, tuple[str, str]],
               errors: int = 0, state: str = "Active") -> None:  # fmt: skip
        def write(name: str) -> None:
            version, digest = told[name]
            now = now_iso()
            status = {
                "lastSeen": now,
                "models": [{"model": model, "version": version, "digest": digest,
                            "state": state, "slot": "A", "since": now}],
                "health": [{"model": model, "version": version, "window": "5m",
                            "windowEnd": now, "requests": 1000, "errors": errors,
                            "latencyP95Ms": 40}],
            }  # fmt: skip
            self.custom.patch_namespaced_custom_object_status(
                G, V, NS, "edgegateways", name, {"status": status}
            )

        list(self.pool.map(write, names))

    def told(self, model: str) -> dict[str, tuple[str, str]]:
        releases = [
            parse_release(r)
            for r in self.custom.list_namespaced_custom_object(G, V, NS, "modelreleases")["items"]
        ]
        out: dict[str, tuple[str, str]] = {}
        for name in self.names:
            a = desired_state(Gateway(name, NS, self.labels[name]), releases).get(model)
            if a is not None and a.snapshot is not None:
                out[name] = (a.snapshot.version, a.snapshot.digest)
        return out

    # ------------------------------------------------------------------ measurements

    def first_cohort_latency(self) -> list[float]:
        steps = [{"name": "canary", "percent": 5, "bake": "1h"}, {"name": "all", "percent": 100}]
        latencies = []
        for i in range(self.args.releases):
            name = f"latency-{i}"
            body = self.release(name, f"m{i}", "1.0.0", steps)
            started = time.monotonic()
            self.custom.create_namespaced_custom_object(G, V, NS, "modelreleases", body)
            done = self.wait(
                name,
                lambda s: (
                    s.get("phase") in ("Progressing", "Paused")
                    and bool((s.get("rollout") or {}).get("cohorts"))
                ),
            )
            latencies.append(done - started)
            self.custom.delete_namespaced_custom_object(G, V, NS, "modelreleases", name)
        return latencies

    def abort_latency(self, rounds: int) -> list[float]:
        steps = [{"name": "canary", "percent": 2, "bake": "1h"}, {"name": "all", "percent": 100}]
        out = []
        for i in range(rounds):
            name, model = f"abort-{i}", f"abort{i}"
            self.apply(self.release(name, model, "1.0.0", steps))
            self.wait(name, lambda s: s.get("phase") in ("Progressing", "Paused"))
            told = self.told(model)
            canary = [n for n, (v, _) in told.items() if v == "1.0.0"]
            self.report(canary, model, told)
            self.wait(name, lambda s: ((s.get("rollout") or {}).get("gates") or {})
                      .get("result") == "Pass")  # fmt: skip
            self.report(canary[:1], model, told, state="Failed")  # the evidence: one write
            evidence = time.monotonic()
            done = self.wait(name, lambda s: s.get("phase") == "Aborted", every=0.02)
            out.append(done - evidence)
            self.custom.delete_namespaced_custom_object(G, V, NS, "modelreleases", name)
        return out

    def rollout(self, name: str, model: str, selector: dict[str, str] | None) -> dict[str, float]:
        """A 3-step rollout with every told gateway reporting healthy; writes, CPU, time."""
        steps = [
            {"name": "canary", "percent": 5, "bake": "2s"},
            {"name": "half", "percent": 50, "bake": "2s"},
            {"name": "all", "percent": 100, "bake": "2s"},
        ]
        writes0, cpu0, t0 = self.writes(), self.cpu_seconds(), time.monotonic()
        self.apply(self.release(name, model, "1.0.0", steps, selector))
        reported: dict[str, tuple[str, str]] = {}
        stop = threading.Event()

        def agents() -> None:
            while not stop.is_set():
                told = self.told(model)
                fresh = [n for n, t in told.items() if reported.get(n) != t]
                if fresh:
                    self.report(fresh, model, told)
                    reported.update({n: told[n] for n in fresh})
                stop.wait(0.5)

        thread = threading.Thread(target=agents, daemon=True)
        thread.start()
        try:
            self.wait(name, lambda s: s.get("phase") == "Succeeded", timeout=600, every=0.2)
        finally:
            stop.set()
            thread.join(60)
        writes1 = self.writes()
        return {
            **{kind: writes1[kind] - writes0.get(kind, 0) for kind in writes1},
            "writes": sum(writes1.values()) - sum(writes0.values()),
            "cpu": self.cpu_seconds() - cpu0,
            "seconds": time.monotonic() - t0,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=10_000)
    parser.add_argument("--releases", type=int, default=20)
    parser.add_argument("--abort-rounds", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the cluster on kill too
    bench = Bench(args)
    rows: list[tuple[str, str, str]] = []
    try:
        bench.start()
        created = bench.create_gateways()
        print(f"created {args.gateways} EdgeGateways in {created:.1f}s", flush=True)
        bench.start_operator()
        print("operator ready", flush=True)
        lat = bench.first_cohort_latency()
        rows.append(("spec change -> first cohort in status, p50", f"{pct(lat, 0.5):.2f} s", ""))
        rows.append(("spec change -> first cohort in status, p99", f"{pct(lat, 0.99):.2f} s",
                     "goal < 2 s"))  # fmt: skip
        print(f"first-cohort latencies: {[round(x, 2) for x in lat]}", flush=True)
        aborts = bench.abort_latency(args.abort_rounds)
        worst = max(aborts)
        rows.append(("gate evidence -> Aborted, median",
                     f"{statistics.median(aborts):.2f} s",
                     f"{statistics.median(aborts) / args.interval:.2f} intervals"))  # fmt: skip
        rows.append(("gate evidence -> Aborted, max", f"{worst:.2f} s",
                     f"{worst / args.interval:.2f} intervals (goal < 2)"))  # fmt: skip
        print(f"abort latencies: {[round(x, 2) for x in aborts]}", flush=True)
        small = bench.rollout("rollout-1k", "fleet1k", {SMALL: "true"})
        print(f"1k rollout: {small}", flush=True)
        large = bench.rollout("rollout-all", "fleetall", None)
        print(f"{args.gateways} rollout: {large}", flush=True)
        for label, r in (("1,000", small), (f"{args.gateways:,}", large)):
            rows.append((f"API writes per rollout, {label} gateways", f"{r['writes']:.0f}",
                         f"{r['status']:.0f} decisions + {r['event']:.0f} events + "
                         f"{r['refresh']:.0f} refreshes"))  # fmt: skip
        rows.append(("operator CPU per rollout, 1,000 gateways", f"{small['cpu']:.1f} s",
                     f"rollout took {small['seconds']:.0f} s"))  # fmt: skip
        rows.append((f"operator CPU per rollout, {args.gateways:,} gateways",
                     f"{large['cpu']:.1f} s", f"rollout took {large['seconds']:.0f} s"))  # fmt: skip
        rows.append(("operator peak RSS", f"{bench.peak_rss_mb():.0f} MB", "goal < 400 MB"))
    finally:
        bench.stop()
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measure':<{width}}  {'value':>10}  note")
    print(f"{'-' * width}  {'-' * 10}  {'-' * 30}")
    for measure, value, note in rows:
        print(f"{measure:<{width}}  {value:>10}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

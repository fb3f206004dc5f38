"""Benchmark: from a revert commit to the whole fleet back on the old version.

``python bench/revert_to_rollback.py [--gateways 1000] [--runs 10] [--long-poll 30]``

Every piece is a real process (``modelfleet.demo.stack``): a local control plane (or
``--kubeconfig`` / ``USE_EXISTING_CLUSTER=true``), ``modelfleet sync`` pulling a local bare git
repository every ``--sync-interval`` seconds, the operator, the fleet API, and N simulated gateways running
the real agent code. Agents long-poll (``?wait=``, up to ``--long-poll`` seconds: the fleet API
answers as soon as the desired state changes); ``--long-poll 0`` polls every ``--poll-interval``
seconds instead. The agents send sequenced reports, so the fleet API answers each once queued and
writes EdgeGateway status behind the answer.

Setup: release 1.0.0 (canary 10%, then 100%; ``rollback: Immediate``) and wait until every
gateway runs it. Each run then releases a new version (2.0.0, 3.0.0, …) by a commit, waits until
every gateway runs it, and reverts that commit with ``modelfleet rollback``. Measured from the
push of the revert commit to the repository the sync pulls (t=0), with a watch on EdgeGateways (what the fleet API wrote from the
agents' reports) and on the ModelRelease:

  synced     the ModelRelease spec names 1.0.0 again (``modelfleet sync`` applied the revert)
  operator   the operator re-verified 1.0.0 and made it the target of every gateway at once
  first      the first gateway reported 1.0.0 Active
  half       half of the gateways did
  last       the last gateway reported 1.0.0 Active   <- the figure (goal: p99 < 10 s)

Prints one row per run and p50/p99 over the runs. The previous version is usually still in each
agent's other A/B slot, verified, so an agent switches back without downloading it again.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))

from modelfleet.demo.gitrepo import FleetRepo  # noqa: E402
from modelfleet.demo.models import ModelShelf  # noqa: E402
from modelfleet.demo.stack import (  # noqa: E402
    FleetApiSettings,
    OperatorSettings,
    SimulatorSettings,
    Stack,
    SyncSettings,
)
from modelfleet.demo.watch import GROUP, VERSION, parse_release  # noqa: E402

GOAL_SECONDS = 10.0  # the goal: the last gateway back within 10 s (with long-poll)
MODEL = "detector"
OLD = "1.0.0"


class FleetWatch:
    """Watches EdgeGateways and the ModelRelease in a thread; timestamps what it sees."""

    def __init__(self, api: Any, namespace: str) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.lock = threading.Lock()
        self.gateways: dict[str, tuple[str, str]] = {}  # name -> (version, state)
        self.release: dict[str, Any] = {}
        self.marks: dict[str, float] = {}
        self.expected = 0
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=("edgegateways",), daemon=True),
            threading.Thread(target=self._run, args=("modelreleases",), daemon=True),
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _run(self, plural: str) -> None:
        from kubernetes import watch

        while not self.stop.is_set():
            with contextlib.suppress(Exception):
                listed = self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, plural
                )
                for item in listed["items"]:
                    self._see(plural, item)
                rv = listed["metadata"]["resourceVersion"]
                w = watch.Watch()
                for event in w.stream(
                    self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace,
                    plural, resource_version=rv, timeout_seconds=60,
                ):  # fmt: skip
                    self._see(plural, event["object"])
                    if self.stop.is_set():
                        w.stop()

    def _see(self, plural: str, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        with self.lock:
            if plural == "modelreleases":
                self.release = obj
                self._check_release(now)
                return
            models = [m for m in (obj.get("status") or {}).get("models") or []
                      if m.get("model") == MODEL]  # fmt: skip
            seen = (
                (str(models[0].get("version")), str(models[0].get("state")))
                if models
                else ("-", "-")
            )
            self.gateways[obj["metadata"]["name"]] = seen
            if seen == (OLD, "Active") and "t0" in self.marks:
                self.marks.setdefault("first", now)
                done = sum(1 for v in self.gateways.values() if v == (OLD, "Active"))
                if done * 2 >= self.expected:
                    self.marks.setdefault("half", now)
                if done == self.expected:
                    self.marks.setdefault("last", now)

    def _check_release(self, now: float) -> None:
        if "t0" not in self.marks:
            return
        r = parse_release(self.release)
        if r.spec_version == OLD:
            self.marks.setdefault("synced", now)
        if r.target == OLD and r.phase in ("Progressing", "Paused"):
            self.marks.setdefault("operator", now)
            self.marks.setdefault("operator_step", float(r.step or 0))

    def arm(self, expected: int) -> None:
        with self.lock:
            self.expected = expected
            self.marks = {"t0": time.monotonic()}

    def count(self, version: str) -> int:
        with self.lock:
            return sum(1 for v in self.gateways.values() if v == (version, "Active"))

    def phase(self) -> tuple[str | None, str | None]:
        with self.lock:
            r = parse_release(self.release)
        return r.phase, r.stable


def wait(what: str, predicate: Callable[[], bool], stack: Stack, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        stack.check()
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


@dataclass(frozen=True)
class Run:
    version: str
    commit: str
    marks: dict[str, float]

    def at(self, key: str) -> float | None:
        return self.marks[key] - self.marks["t0"] if key in self.marks else None


def fleet_api_figures(url: str | None) -> str:
    """Report latency and status writes from the fleet API's Prometheus page."""
    import urllib.request

    if url is None:
        return ""
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    buckets: list[tuple[float, float]] = []
    writes: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("modelfleet_fleet_api_request_seconds_bucket{") and "/v1/report" in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append(
                (float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1]))
            )
        elif line.startswith("modelfleet_fleet_api_status_writes_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            writes[reason] = int(float(line.rsplit(" ", 1)[1]))
    if not buckets:
        return ""
    total = buckets[-1][1]

    def upper(q: float) -> str:
        le = next(le for le, n in buckets if n >= q * total)
        return "> 2.5s" if le == float("inf") else f"<= {le:g}s"

    shown = ", ".join(f"{k} {v}" for k, v in sorted(writes.items()))
    return (f"fleet API over the whole bench: {int(total)} reports, latency p50 {upper(0.5)}, "
            f"p90 {upper(0.9)}; EdgeGateway status writes: {shown}")  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--gateways", type=int, default=1000)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--poll-interval", type=float, default=5.0, help="gateway poll interval (s)")
    p.add_argument("--sync-interval", type=float, default=1.0, help="modelfleet sync interval (s)")
    p.add_argument("--operator-interval", type=float, default=1.0)
    p.add_argument(
        "--long-poll", type=float, default=30.0,
        help="agents long-poll up to SECONDS (0: plain polls every --poll-interval)",
    )  # fmt: skip
    p.add_argument(
        "--sim-processes", type=int, default=2,
        help="simulator processes the gateways are spread over (one event loop each)",
    )  # fmt: skip
    p.add_argument("--kubeconfig", type=Path, help="existing cluster (else a local control plane)")
    p.add_argument("--namespace", default="bench-revert")
    p.add_argument("--workdir", type=Path, help="keep files and logs here")
    args = p.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="modelfleet-bench-revert-"))
    print(f"workdir {workdir} (logs in {workdir / 'stack' / 'logs'})", flush=True)
    runs: list[Run] = []
    with Stack(workdir / "stack", args.namespace, kubeconfig=args.kubeconfig) as stack:
        t = time.monotonic()
        stack.start_control_plane()
        stack.ensure_namespace()
        shelf = ModelShelf(workdir / "models", model=MODEL, policy_name=f"{args.namespace}-signers")
        repo = FleetRepo(workdir / "git", namespace=args.namespace, name=MODEL)
        repo.create(shelf.policy_manifest())
        stack.fleet_ca_init()
        stack.start_fleet_api(
            FleetApiSettings(
                poll_interval=args.poll_interval, active_poll_interval=args.poll_interval,
                health_interval=14.0, active_heartbeat_interval=50.0,
                idle_health_interval=600.0, heartbeat_interval=180.0,
                rate_limit=5.0, rate_burst=20.0,
            )
        )  # fmt: skip
        stack.start_operator(
            OperatorSettings(interval=args.operator_interval, file_roots=(shelf.root,))
        )
        stack.start_sync(SyncSettings(repo_url=repo.url, interval=args.sync_interval))
        stack.start_simulator(
            SimulatorSettings(
                gateways=args.gateways, poll_interval=args.poll_interval, report_interval=15.0,
                window=15.0, progress=30.0, long_poll=args.long_poll or None,
                processes=args.sim_processes,
            ),
            trust_policy=shelf.write_policy(workdir / "trust-policy.yaml"),
        )  # fmt: skip
        fleet = FleetWatch(stack.api, args.namespace)
        fleet.start()
        print(
            f"setup: {args.gateways} gateways enrolled in {time.monotonic() - t:.0f}s", flush=True
        )

        rollout = {
            "steps": [{"name": "canary", "percent": 10, "bake": "1s"},
                      {"name": "fleet", "percent": 100, "bake": "1s"}],
            "gates": {"maxFailedGateways": 0, "minReportingRatio": 0.5},
            "rollback": "Immediate",
        }  # fmt: skip
        t = time.monotonic()
        repo.release(shelf.build(OLD), trust_policy=shelf.policy_name, rollout=rollout)
        wait(f"{OLD} everywhere", lambda: fleet.count(OLD) == args.gateways
             and fleet.phase() == ("Succeeded", OLD), stack, 600)  # fmt: skip
        print(f"setup: {OLD} on every gateway after {time.monotonic() - t:.0f}s", flush=True)

        keys = ("synced", "operator", "first", "half", "last")
        header = f"{'run':>3}  {'reverted':<8}  {'commit':<12}" + "".join(f"{k:>10}" for k in keys)
        print(header, flush=True)
        for i in range(args.runs):
            version = f"{i + 2}.0.0"
            repo.release(shelf.build(version))
            wait(f"{version} everywhere", lambda v=version: fleet.count(v) == args.gateways
                 and fleet.phase() == ("Succeeded", v), stack, 600)  # fmt: skip
            change = repo.rollback(push=False)
            fleet.arm(args.gateways)
            repo.push()
            wait(f"{OLD} everywhere after the revert", lambda: "last" in fleet.marks, stack, 300)
            with fleet.lock:
                run = Run(version, change.commit, dict(fleet.marks))
            runs.append(run)
            cells = [run.at(k) for k in keys]
            shown = "".join(f"{c:>9.1f}s" if c is not None else f"{'-':>10}" for c in cells)
            print(f"{i + 1:>3}  {version:<8}  {change.commit[:12]:<12}{shown}", flush=True)
            wait(f"{OLD} settled", lambda: fleet.phase() == ("Succeeded", OLD), stack, 300)
        fleet.stop.set()
        figures = fleet_api_figures(stack.fleet_metrics_url)

    print()
    print(f"revert commit -> last of {args.gateways} gateways reporting {OLD} Active "
          f"(long-poll {args.long_poll:g}s, poll interval {args.poll_interval:g}s, "
          f"sync interval {args.sync_interval:g}s, "
          f"{args.sim_processes} simulator processes, "
          f"{len(runs)} runs, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")  # fmt: skip
    print(f"{'':<10}{'p50':>8}{'p99':>8}{'max':>8}")
    for key in ("synced", "operator", "first", "half", "last"):
        values = [v for r in runs if (v := r.at(key)) is not None]
        if values:
            goal = f"   goal p99 < {GOAL_SECONDS:.0f}s" if key == "last" else ""
            print(f"{key:<10}{percentile(values, 0.5):>7.1f}s{percentile(values, 0.99):>7.1f}s"
                  f"{max(values):>7.1f}s{goal}")  # fmt: skip
    lasts = [v for r in runs if (v := r.at("last")) is not None]
    steps = {r.marks.get("operator_step") for r in runs}
    print(
        f"operator put the old version on step(s) {sorted(s for s in steps if s is not None)} "
        "(the last step: every gateway at once)"
    )
    if figures:
        print(figures)
    verdict = "meets" if lasts and percentile(lasts, 0.99) < GOAL_SECONDS else "misses"
    print(f"goal p99 < {GOAL_SECONDS:.0f}s: {verdict}")
    if args.workdir is None:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

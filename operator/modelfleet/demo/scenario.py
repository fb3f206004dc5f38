"""The story ``modelfleet demo`` tells, act by act, on a running :class:`Stack`.

Setup: three signed versions of a small detector model, a GitOps repository whose first commit
is the TrustPolicy, the fleet CA, the fleet API, the operator, ``modelfleet sync`` and N
simulated gateways (version 2.0.0 is injected with a regression: a 30% error rate).

1. release 1.0.0 by a commit (``modelfleet release`` + merge) -> sync -> full rollout;
2. release 2.0.0 -> its canary trips the error-rate gate, the rollout aborts and the canaries
   return to 1.0.0; ``modelfleet rollback`` then reverts the commit so Git matches the fleet;
3. release 3.0.0 -> full rollout;
4. ``modelfleet rollback`` reverts 3.0.0 -> every gateway returns to 1.0.0 in one step
   (``rollback: Immediate`` and 1.0.0 was stable before).

Each act waits for what the API server says (release phase and the versions gateways report
Active) and records the time from the push of its commit to convergence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from modelfleet.demo.cluster import namespace_in_use
from modelfleet.demo.gitrepo import Change, FleetRepo
from modelfleet.demo.models import ModelShelf
from modelfleet.demo.progress import ProgressPrinter
from modelfleet.demo.stack import (
    FleetApiSettings,
    OperatorSettings,
    SimulatorSettings,
    Stack,
    StackError,
    SyncSettings,
)
from modelfleet.demo.watch import FleetView, Observer
from modelfleet.errors import ConfigError

MODEL = "detector"
V1, V2, V3 = "1.0.0", "2.0.0", "3.0.0"
POLL_SECONDS = 0.25


OPERATOR_INTERVAL = SYNC_INTERVAL = 1.0  # seconds
REGRESSION_ERROR_RATE = 0.3  # what the canary must catch in 2.0.0
ACT_TIMEOUT = 180.0  # seconds an act may take to converge


@dataclass(frozen=True)
class DemoSettings:
    """Knobs of the demo (defaults: what ``make demo`` runs)."""

    gateways: int = 100
    bake: str = "5s"


class ActResult(NamedTuple):
    """One row of the summary table."""

    step: str
    commit: str
    outcome: str
    seconds: float  # push -> the release settled (phase final, every gateway on the version)
    fleet_seconds: float | None = None  # push -> every gateway reported the version Active


def rollout_policy(bake: str) -> dict[str, Any]:
    """The stream's rollout policy, committed with its first release."""
    return {
        "steps": [
            {"name": "canary", "percent": 10, "bake": bake},
            {"name": "early", "percent": 50, "bake": bake},
            {"name": "fleet", "percent": 100, "bake": bake},
        ],
        "gates": {
            "maxFailedGateways": 0,
            "maxErrorRate": 0.05,
            "maxLatencyP95Ms": 250,
            "minReportingRatio": 0.8,
            "minRequests": 5,  # one gateway sends ~10 per 2 s window
            "progressDeadline": "2m",
        },
        "rollback": "Immediate",
    }


class Demo:
    """Runs the setup and the four acts on ``stack``; narrates on ``out``."""

    def __init__(
        self, stack: Stack, settings: DemoSettings, out: TextIO, *, tty: bool, workdir: Path
    ) -> None:
        self.stack = stack
        self.settings = settings
        self.out = out
        self.progress = ProgressPrinter(out, tty=tty)
        self.workdir = workdir
        self.policy_name = f"{stack.namespace}-signers"
        self.shelf = ModelShelf(workdir / "models", model=MODEL, policy_name=self.policy_name)
        self.repo = FleetRepo(workdir / "git", namespace=stack.namespace, name=MODEL)
        self.results: list[ActResult] = []
        self.created_namespace = False
        self._observer: Observer | None = None
        self._started = time.monotonic()

    # ----------------------------------------------------------------- narration
    def say(self, text: str = "") -> None:
        self.progress.say(text)

    def done(self, what: str, since: float) -> None:
        self.say(f"  ok  {what} ({time.monotonic() - since:.1f}s)")

    @property
    def observer(self) -> Observer:
        if self._observer is None:
            self._observer = Observer(self.stack.api, self.stack.namespace, MODEL)
        return self._observer

    # ----------------------------------------------------------------- setup
    def setup(self) -> None:
        s, stack = self.settings, self.stack
        self.say(f"modelfleet demo: {s.gateways} gateways, namespace {stack.namespace}")
        self.say(f"  work folder {self.workdir} (process logs in {stack.workdir / 'logs'})")
        t = time.monotonic()
        stack.start_control_plane()
        self.created_namespace = stack.ensure_namespace()
        if not stack.owns_cluster and not self.created_namespace:
            in_use = namespace_in_use(stack.api, stack.namespace)
            if in_use:
                raise ConfigError(
                    f"namespace {stack.namespace} already holds {', '.join(in_use[:3])}; "
                    "choose another with --namespace"
                )
        where = "started" if stack.owns_cluster else "reached"
        self.done(f"control plane {where} (kubeconfig {stack.kubeconfig})", t)
        t = time.monotonic()
        for version in (V1, V2, V3):
            self.shelf.build(version)
        policy_file = self.shelf.write_policy(self.workdir / "trust-policy.yaml")
        self.done(f"built and signed {MODEL} {V1}, {V2}, {V3} (EC P-256 key, model-signing)", t)
        t = time.monotonic()
        self.repo.create(self.shelf.policy_manifest())
        self.done(f"GitOps repository {self.repo.url} (first commit: TrustPolicy)", t)
        t = time.monotonic()
        stack.fleet_ca_init()
        url = stack.start_fleet_api(FleetApiSettings())
        self.done(f"fleet API on {url} (mTLS, fleet CA in Secret)", t)
        t = time.monotonic()
        stack.start_operator(
            OperatorSettings(interval=OPERATOR_INTERVAL, file_roots=(self.shelf.root,))
        )
        stack.start_sync(SyncSettings(repo_url=self.repo.url, interval=SYNC_INTERVAL))
        self.done("operator and `modelfleet sync` (main, every 1s) running", t)
        t = time.monotonic()
        behaviour = {V2: {"errorRate": REGRESSION_ERROR_RATE, "latencyMs": {"p95": 90}}}
        stack.start_simulator(
            SimulatorSettings(gateways=s.gateways, behaviour=behaviour), trust_policy=policy_file
        )
        self.done(
            f"{s.gateways} simulated gateways enrolled and polling "
            f"(injected regression: {V2} answers {REGRESSION_ERROR_RATE:.0%} errors)",
            t,
        )

    # ----------------------------------------------------------------- acts
    def run(self) -> list[ActResult]:
        n = self.settings.gateways
        self.say()
        self.say(f"1. Release {V1}: a commit, merged to main; sync applies it; cohorts roll out")
        self.roll_out(
            1, V1, trust_policy=self.policy_name, rollout=rollout_policy(self.settings.bake)
        )

        self.say()
        self.say(f"2. Release {V2}, which has a regression: the canary must catch it")
        change = self.repo.release(self.shelf.build(V2))
        self.say(f"  commit {change.commit[:12]} pushed: {change.summary}")

        def aborted(v: FleetView) -> bool:
            return (
                v.release.spec_version == V2
                and v.release.observed
                and v.release.phase == "Aborted"
                and v.all_on(V1)
            )

        view, done, fleet = self.converge(aborted, fleet=aborted)
        last = view.release.history[-1] if view.release.history else {}
        reason = str(last.get("reason") or view.release.gate_reason or "gate failed")
        if view.release.error_rate is not None and "ErrorRate" in reason:
            reason += f", error rate {view.release.error_rate:.1%} > 5%"
        self.say(f"  the operator aborted {V2}: {reason}")
        self.record(
            f"2 release {V2} (regression)",
            change,
            f"Aborted ({_short(str(reason))}): {n}/{n} back on {V1}",
            done,
            fleet,
        )
        self.say(f"  Git still says {V2}: `modelfleet rollback` reverts that commit")
        change = self.repo.rollback()
        self.say(f"  commit {change.commit[:12]} pushed: {change.summary}")
        view, done, _ = self.converge(lambda v: self._settled(v, V1, "Succeeded"))
        self.record(
            f"  rollback {V2} -> {V1}", change, f"Git matches the fleet: {n}/{n} on {V1}", done
        )

        self.say()
        self.say(f"3. Release {V3}: healthy, rolls out cohort by cohort")
        self.roll_out(3, V3)

        self.say()
        self.say(f"4. Roll back {V3} with `modelfleet rollback`: a revert, back to {V1} at once")
        change = self.repo.rollback()
        self.say(f"  commit {change.commit[:12]} pushed: {change.summary}")
        steps_seen: set[int] = set()

        def back_on_v1(v: FleetView) -> bool:
            if v.release.target == V1 and v.release.step is not None:
                steps_seen.add(v.release.step)
            return self._settled(v, V1, "Succeeded") and v.release.stable == V1

        view, done, fleet = self.converge(back_on_v1, fleet=lambda v: v.all_on(V1), expect=V1)
        reasons = {reason for _, reason, _ in self.observer.events()}
        how = "in one step (ImmediateRollback)" if "ImmediateRollback" in reasons else "by steps"
        if len(steps_seen) > 1:
            how = f"through steps {sorted(steps_seen)}"
        self.record(
            f"4 rollback {V3} -> {V1}", change, f"Succeeded {how}: {n}/{n} on {V1}", done, fleet
        )
        return self.results

    def roll_out(self, act: int, version: str, **release: Any) -> None:
        """Release a healthy ``version`` (``release``: :meth:`FleetRepo.release` options) and
        wait until every gateway runs it and it is stable."""
        n = self.settings.gateways
        change = self.repo.release(self.shelf.build(version), **release)
        self.say(f"  commit {change.commit[:12]} pushed: {change.summary}")
        _, done, fleet = self.converge(
            lambda v: self._settled(v, version, "Succeeded") and v.release.stable == version,
            fleet=lambda v: v.all_on(version),
            expect=version,
        )
        outcome = f"Succeeded: {n}/{n} gateways on {version}"
        self.record(f"{act} release {version}", change, outcome, done, fleet)

    def _settled(self, v: FleetView, version: str, phase: str) -> bool:
        return (
            v.release.spec_version == version
            and v.release.observed
            and v.release.phase == phase
            and v.all_on(version)
        )

    def converge(
        self,
        until: Callable[[FleetView], bool],
        *,
        fleet: Callable[[FleetView], bool] | None = None,
        expect: str | None = None,
    ) -> tuple[FleetView, float, float | None]:
        """Poll the cluster, drawing progress, until ``until`` holds. Returns the last view,
        the seconds until then, and the seconds until ``fleet`` first held (if given). With
        ``expect`` (a version that must roll out), an abort or rejection of it fails at once."""
        start = time.monotonic()
        deadline = start + ACT_TIMEOUT
        fleet_at: float | None = None
        while True:
            self.stack.check()
            view = self.observer.snapshot()
            elapsed = time.monotonic() - start
            if fleet is not None and fleet_at is None and fleet(view):
                fleet_at = elapsed
            if until(view):
                self.progress.finish(view, elapsed)
                return view, elapsed, fleet_at
            if expect is not None and _went_wrong(view, expect):
                self.progress.finish(view, elapsed)
                r = view.release
                raise StackError(
                    f"{expect} ended {r.phase} ({r.gate_reason}) instead of rolling out; "
                    f"logs in {self.stack.workdir / 'logs'}"
                )
            self.progress.update(view, elapsed)
            if time.monotonic() > deadline:
                self.progress.finish(view, elapsed)
                raise StackError(
                    f"no convergence within {ACT_TIMEOUT:.0f}s; last state: "
                    f"{view.release.phase} ({view.release.gate_reason}), "
                    f"gateways {view.versions_line()}; logs in {self.stack.workdir / 'logs'}"
                )
            time.sleep(POLL_SECONDS)

    def record(
        self, step: str, change: Change, outcome: str, seconds: float, fleet: float | None = None
    ) -> None:
        self.results.append(ActResult(step, change.commit, outcome, seconds, fleet))
        when = f"fleet after {fleet:.1f}s, " if fleet is not None else ""
        self.say(f"  => {outcome} ({when}settled {seconds:.1f}s after the push)")

    # ----------------------------------------------------------------- summary
    def summary(self) -> str:
        """The table: per step, commit, outcome, time to the whole fleet and to settled."""
        rows = [("STEP", "COMMIT", "OUTCOME", "FLEET", "SETTLED")]
        rows += [
            (
                r.step,
                r.commit[:12],
                r.outcome,
                "-" if r.fleet_seconds is None else f"{r.fleet_seconds:.1f}s",
                f"{r.seconds:.1f}s",
            )
            for r in self.results
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
        total = time.monotonic() - self._started
        return "\n".join(
            [
                *(line.rstrip() for line in lines),
                "FLEET: from the push until every gateway reported the version Active; "
                "SETTLED: until the release reached its final phase.",
                f"demo wall time: {total:.0f}s",
            ]
        )


def _went_wrong(view: FleetView, version: str) -> bool:
    r = view.release
    return r.spec_version == version and r.observed and r.phase in ("Aborted", "Rejected")


def _short(reason: str, limit: int = 60) -> str:
    text = " ".join(reason.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""Readiness as Flux, kpt and ``kubectl wait`` see it, judged by their own code.

The real operator drives one ModelRelease, with gateways played by simulated agents (the real
agent code) through the real fleet API, through a first release, a healthy three-step rollout
(gateways that send their first health window a while after activating, as real agents do), an
abort, a rejection, a revert to ``stable``, a rollback and a pause. Every revision of the object
the API server stored on the way is written out with the verdict a user expects, and
``sigs.k8s.io/cli-utils/pkg/kstatus`` (the library behind Flux's health checks and
``wait: true``) judges each of them in the Go module ``tests/go/kstatus``:

* not observed yet (``status.observedGeneration`` behind ``metadata.generation``, including a
  release just created), Verifying, Progressing, Paused: **InProgress**;
* Succeeded (also after a revert or a rollback): **Current**;
* Aborted, Rejected: **Failed**, so that ``wait: true`` fails at once instead of timing out.

EdgeGateways are **Current** whatever they report: their spec is in force at once (the fleet
API reads it on every request); what a gateway runs is the ModelRelease's status.

``kubectl wait`` (the real kubectl of the control plane) is run as the CI recipe of
``docs/flux.md`` says.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .artifacts import Artifacts, release_body, serve_folder
from .cluster import GROUP, ROOT, VERSION, Api, StatusRecorder, establish, status_where, wait_for
from .fleet import SimulatedFleet
from .operatorproc import OperatorProcess

pytestmark = pytest.mark.cluster


GO_MODULE = ROOT / "tests" / "go" / "kstatus"
IN_PROGRESS, CURRENT, FAILED = "InProgress", "Current", "Failed"
#: What a user expects kstatus to say of each phase (docs/flux.md).
EXPECTED = {
    "Pending": IN_PROGRESS,
    "Verifying": IN_PROGRESS,
    "Progressing": IN_PROGRESS,
    "Paused": IN_PROGRESS,
    "Succeeded": CURRENT,
    "Aborted": FAILED,
    "Rejected": FAILED,
}


def expected_verdict(obj: dict[str, Any]) -> str:
    """The verdict a user expects for one stored revision of a ModelRelease."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return IN_PROGRESS  # the operator has not looked at this spec yet
    if any(c["type"] == "Conflict" and c["status"] == "True" for c in status["conditions"]):
        return FAILED  # assignments frozen until a human makes the selectors disjoint
    return EXPECTED[status.get("phase") or "Pending"]


def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    obj = json.loads(json.dumps(obj))
    obj["metadata"].pop("managedFields", None)
    return obj


class Cases:
    """Objects with their expected verdicts, written as kstatus cases (one JSON file each)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self.seen: Counter[tuple[str, str]] = Counter()
        self.distinct: dict[tuple[str, str, str, str, bool], str] = {}
        """One file per (kind, phase, reason, verdict, in conflict): the Go module's testdata."""

    def add(self, label: str, obj: dict[str, Any], expect: str) -> None:
        self.count += 1
        kind = obj.get("kind", "Object")
        status = obj.get("status") or {}
        self.seen[(status.get("phase") or kind, expect)] += 1
        name = f"{self.count:03d}-{label}-{kind.lower()}-{obj['metadata']['name']}"
        case = {"name": name, "expect": expect, "object": _strip(obj)}
        (self.folder / f"{name}.json").write_text(json.dumps(case, indent=1, sort_keys=True))
        conflict = _condition(status, "Conflict")[0] == "True"
        key = (kind, status.get("phase") or "", status.get("reason") or "", expect, conflict)
        self.distinct.setdefault(key, f"{name}.json")

    def releases(self, label: str, objects: list[dict[str, Any]]) -> None:
        last: Any = None
        for obj in objects:
            key = (obj["metadata"].get("generation"), obj.get("status"))
            if key != last:
                self.add(label, obj, expected_verdict(obj))
                last = key

    def gateways(self, label: str, api: Api) -> None:
        items = api.custom.list_namespaced_custom_object(
            GROUP, VERSION, api.namespace, "edgegateways"
        )["items"]
        for obj in items[:3]:
            obj.setdefault("kind", "EdgeGateway")
            obj.setdefault("apiVersion", f"{GROUP}/{VERSION}")
            self.add(label, obj, CURRENT)


def go_test(cases: Path) -> subprocess.CompletedProcess[str]:
    go = shutil.which("go")
    assert go is not None, (
        "the Go toolchain is needed to judge readiness with kstatus (tests/go/kstatus): "
        "install Go (>= 1.24) and run again"
    )
    env = dict(os.environ, KSTATUS_CASES=str(cases), GOFLAGS="-mod=readonly", GOTOOLCHAIN="local")
    return subprocess.run(
        [go, "test", "-count=1", "-v", "./..."],
        cwd=GO_MODULE,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _condition(status: dict[str, Any], type_: str) -> tuple[str | None, str | None]:
    for c in status.get("conditions") or []:
        if c["type"] == type_:
            return c["status"], c.get("reason")
    return None, None


def _events(api: Api) -> Counter[tuple[str, str, str]]:
    return Counter((e["type"], e["reason"], e["message"]) for e in api.events("detector"))


def test_kstatus_judges_every_phase_of_real_rollouts_as_a_user_expects(
    api: Api,
    artifacts: Artifacts,
    fleet: SimulatedFleet,
    operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    # Gateways send their first health window a while after activating: the grace is two
    # report intervals.
    operator.stop()
    operator.report_interval = 3.0
    operator.start()
    fleet.create(40, labels=lambda i: {"ring": "early"} if i % 4 == 0 else {})
    fleet.start()
    cases = Cases(tmp_path / "kstatus-cases")
    recorder = StatusRecorder(api, "detector").start()
    try:
        # 1. The first release: created (no status yet) ... Succeeded.
        created = api.apply_release(
            release_body("detector", "1.0.0", artifacts, steps=[{"name": "all", "percent": 100}])
        )
        cases.add("created", created, IN_PROGRESS)
        status_where(api, "1.0.0 stable", lambda s: s.get("phase") == "Succeeded")
        cases.gateways("first-release", api)

        # 2. A healthy three-step rollout whose cohorts report late: Progressing only.
        fleet.profile("2.0.0", first_report_after=2.0)
        events_before = _events(api)
        start = len(recorder.objects)
        api.apply_release(release_body("detector", "2.0.0", artifacts))
        status_where(
            api,
            "2.0.0 stable",
            lambda s: s.get("phase") == "Succeeded" and s["stable"]["version"] == "2.0.0",
            90,
        )
        healthy = recorder.objects[start:]
        phases = [o["status"].get("phase") for o in healthy if o.get("status")]
        changes = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
        # (Verifying is stored only when verification takes a while.)
        assert [p for p in changes if p != "Verifying"] == [
            "Succeeded",
            "Progressing",
            "Succeeded",
        ], changes
        reasons = {o["status"].get("reason") for o in healthy if o.get("status")}
        assert "WaitingForReports" in reasons, "the late first reports were waited for"
        steps = [o["status"]["rollout"]["step"] for o in healthy
                 if o["status"].get("phase") == "Progressing"]  # fmt: skip
        assert sorted(set(steps)) == [0, 1, 2]

        def new_events() -> list[tuple[str, str, str]]:
            return sorted((_events(api) - events_before).elements())

        expected = [("Normal", "BakeCompleted")] * 3 + [
            ("Normal", "NewVersion"),
            ("Normal", "Verified"),
        ]
        wait_for(lambda: len(new_events()) >= len(expected), 20, what="the rollout's events")
        assert [(t, r) for t, r, _ in new_events()] == expected, new_events()
        cases.gateways("healthy-rollout", api)

        # 3. A regression in the canary: Aborted.
        fleet.profile("3.0.0", errors=400)
        api.apply_release(release_body("detector", "3.0.0", artifacts))
        aborted = status_where(api, "Aborted", lambda s: s.get("phase") == "Aborted")
        assert aborted["reason"] == "ErrorRateExceeded"
        conds = {c["type"]: (c["status"], c.get("reason")) for c in aborted["conditions"]}
        assert conds["Stalled"] == ("True", "ErrorRateExceeded")
        assert conds["Reconciling"][0] == "False"

        # 4. A signature that does not match: Rejected.
        bad = release_body("detector", "4.0.0", artifacts)
        bad["spec"]["artifact"]["signature"]["uri"] = artifacts.sign("1.0.0").signature.as_uri()
        api.apply_release(bad)
        status_where(api, "Rejected", lambda s: s.get("phase") == "Rejected")

        # 5. Revert to stable: Succeeded, and the verification shown is stable's.
        api.apply_release(release_body("detector", "2.0.0", artifacts))
        reverted = status_where(api, "Reverted", lambda s: s.get("reason") == "Reverted")
        assert reverted["phase"] == "Succeeded"
        assert reverted["verification"] == reverted["stable"]["verification"]
        assert reverted["verification"]["verified"] is True
        assert reverted["verification"]["digest"] == artifacts.sign("2.0.0").digest

        # 6. Roll back to a formerly stable version: re-verified, every gateway at once.
        api.apply_release(release_body("detector", "1.0.0", artifacts))
        status_where(
            api,
            "rollback to 1.0.0",
            lambda s: s.get("phase") == "Succeeded" and s["stable"]["version"] == "1.0.0",
        )

        # 7. Paused by spec: in progress, not failed, not current.
        api.apply_release(release_body("detector", "2.0.0", artifacts, paused=True))
        status_where(api, "PausedBySpec", lambda s: s.get("reason") == "PausedBySpec")
        cases.gateways("paused", api)

        # 8. A verification that takes a while is stored as Verifying meanwhile.
        with serve_folder(artifacts.root, delay=2.0) as base:
            api.apply_release(release_body("detector", "5.0.0", artifacts, base_url=base))
            status_where(api, "Verifying", lambda s: s.get("phase") == "Verifying")
            status_where(api, "5.0.0 verified", lambda s: s.get("phase") == "Progressing")

        # 9. Another release of the same model over the same gateways: both in conflict.
        api.apply_release(release_body("detector-other", "1.0.0", artifacts))
        status_where(api, "Conflict", lambda s: _condition(s, "Stalled") == ("True", "Conflict"))

        def other_in_conflict() -> dict[str, Any] | None:
            obj = api.release("detector-other")
            stalled = _condition(obj.get("status") or {}, "Stalled")
            return obj if stalled == ("True", "Conflict") else None

        cases.add("conflict", wait_for(other_in_conflict, 30, what="Conflict"), FAILED)
        api.custom.delete_namespaced_custom_object(
            GROUP, VERSION, api.namespace, "modelreleases", "detector-other"
        )
        status_where(api, "Conflict cleared", lambda s: _condition(s, "Stalled")[0] == "False")
        final = api.release("detector")
    finally:
        recorder.stop()
    cases.releases("release", recorder.objects)
    cases.add("last", final, expected_verdict(final))

    judged = {phase for phase, _ in cases.seen}
    assert {"Verifying", "Progressing", "Paused", "Succeeded", "Aborted", "Rejected"} <= judged
    assert any(key[4] for key in cases.distinct), "a release in conflict was judged"
    assert {verdict for _, verdict in cases.seen} == {IN_PROGRESS, CURRENT, FAILED}
    proc = go_test(cases.folder)
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    passed = proc.stdout.count("--- PASS: TestComputeJudgesEveryPhaseAsAUserExpects/")
    assert passed == cases.count, proc.stdout[-5000:]
    if os.environ.get("MODELFLEET_KSTATUS_TESTDATA"):  # refresh the Go module's own copy
        target = GO_MODULE / "testdata"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        for file in cases.distinct.values():
            shutil.copy(cases.folder / file, target / file)


def _kubectl_apply(api: Api, artifacts: Artifacts, version: str) -> None:
    """``kubectl apply`` of the release at ``version``, as a CI job would."""
    manifest = json.dumps(release_body("detector", version, artifacts))
    api.cp.kubectl("apply", "-n", api.namespace, "-f", "-", input=manifest)


def _kubectl_wait(api: Api, condition: str, timeout: str) -> subprocess.CompletedProcess[str]:
    return api.cp.kubectl(
        "wait", "-n", api.namespace, "mr/detector", f"--for=condition={condition}",
        f"--timeout={timeout}", check=False, timeout=300,
    )  # fmt: skip


def test_kubectl_wait_for_ready_returns_when_the_rollout_succeeds(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=20)
    # Release, then wait: Ready is already True for 1.0.0, but for an older generation.
    _kubectl_apply(api, artifacts, "2.0.0")
    proc = _kubectl_wait(api, "Ready", "120s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "condition met" in proc.stdout
    st = api.status("detector")
    assert (st["phase"], st["stable"]["version"]) == ("Succeeded", "2.0.0")


def test_ci_recipe_fails_fast_when_the_rollout_aborts(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=20)
    fleet.profile("2.0.0", p95=900.0)
    _kubectl_apply(api, artifacts, "2.0.0")
    # docs/flux.md: wait until the operator has nothing left to do, then require Ready.
    proc = _kubectl_wait(api, "Reconciling=False", "120s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = api.status("detector")
    assert (st["phase"], st["reason"]) == ("Aborted", "LatencyP95Exceeded")
    ready = _kubectl_wait(api, "Ready", "2s")
    assert ready.returncode != 0
    stalled = _kubectl_wait(api, "Stalled", "5s")
    assert stalled.returncode == 0, stalled.stdout + stalled.stderr

"""Two operator replicas with leader election on a coordination.k8s.io/v1 Lease.

Both replicas are real ``modelfleet operator --leader-elect`` processes against the real API
server: only the holder of the Lease runs handlers and writes; SIGKILL of the leader mid-rollout
hands over once the Lease expires, SIGTERM releases it so the standby takes over at once.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from modelfleet.devcluster import ControlPlane
from tests.integration.test_rbac import OPERATOR, SYSTEM, Installed, installed

from .artifacts import Artifacts, call_failed, release_body
from .cluster import Api, StatusRecorder, desired_versions, establish, wait_for
from .fleet import SimulatedFleet
from .operatorproc import OperatorProcess, artifact_sources
from .test_resilience import STEPS, check_revisions

pytestmark = pytest.mark.cluster


LEASE = "modelfleet-operator"
ACTING = ("status", "event", "other")
"""Write kinds of an acting operator (everything but its attempts on the Lease)."""


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Replicas:
    """Two ``modelfleet operator --leader-elect`` processes sharing one Lease in the namespace."""

    def __init__(self, cp: ControlPlane, namespace: str, root: Path, duration: int) -> None:
        self.duration = duration
        self.coord = k8s.CoordinationV1Api(Api(cp, namespace).client)
        self.namespace = namespace
        lease = ("--leader-elect", "--lease-name", LEASE, "--lease-namespace", namespace,
                 "--lease-duration", str(duration))  # fmt: skip
        self.procs = {
            name: OperatorProcess(
                cp, namespace, self._dir(root / name), extra=(*artifact_sources(root), *lease)
            )
            for name in ("a", "b")
        }

    @staticmethod
    def _dir(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return path

    def lease(self) -> dict[str, Any]:
        spec = self.coord.read_namespaced_lease(LEASE, self.namespace).spec
        return {
            "holder": spec.holder_identity or "",
            "duration": spec.lease_duration_seconds,
            "acquired": spec.acquire_time,
            "renewed": spec.renew_time,
            "transitions": spec.lease_transitions,
        }

    def identity(self, name: str) -> str:
        """The identity the replica announced in its log."""
        found = re.search(r"waiting for Lease \S+ as (\S+)", self.procs[name].logs())
        assert found, f"replica {name} did not stand by:\n{self.procs[name].logs()[-3000:]}"
        return found.group(1)

    def holder(self) -> str | None:
        """Which replica ("a"/"b") holds the Lease, if any."""
        try:
            held = self.lease()["holder"]
        except k8s.ApiException:
            return None
        return next((n for n in self.procs if held and held == self.identity(n)), None)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


@pytest.fixture
def replicas(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Any:
    reps = Replicas(control_plane, namespace, tmp_path, duration=6)
    try:
        yield reps
    finally:
        reps.stop()
        if call_failed(request):
            for name, proc in reps.procs.items():
                sys.stderr.write(f"---- replica {name}\n{proc.logs()[-12000:]}")


def _start_pair(replicas: Replicas) -> tuple[OperatorProcess, OperatorProcess]:
    """Start a, wait until it leads, then start b (the standby); (leader, standby)."""
    replicas.procs["a"].start()
    wait_for(lambda: replicas.holder() == "a", 30, what="replica a to hold the Lease")
    replicas.procs["b"].start()
    wait_for(lambda: "waiting for Lease" in replicas.procs["b"].logs(), 30, what="b standing by")
    return replicas.procs["a"], replicas.procs["b"]


def _acting(writes: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in writes.items() if k != "lease" and v}


def test_sigkill_of_the_leader_mid_rollout_hands_over_after_the_lease_expires(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, replicas: Replicas
) -> None:
    leader, standby = _start_pair(replicas)
    establish(api, fleet, artifacts, "1.0.0", gateways=30)
    digests = {v: artifacts.sign(v).digest for v in ("1.0.0", "2.0.0")}
    assert _acting(standby.writes()) == {}, "the standby wrote while the leader led"
    assert _acting(leader.writes()).get("status"), "the leader rolled 1.0.0 out"

    recorder = StatusRecorder(api, "detector").start()
    try:
        api.apply_release(release_body("detector", "2.0.0", artifacts, steps=STEPS))

        def mid_rollout() -> bool:
            st = api.status("detector")
            return (st.get("target") or {}).get("version") == "2.0.0" and st["rollout"]["step"] == 1

        wait_for(mid_rollout, 60, what="2.0.0 at its second step")
        assert _acting(standby.writes()) == {}, "the standby wrote during the rollout"
        before = replicas.lease()
        leader.kill()
        killed = time.monotonic()
        wait_for(lambda: replicas.holder() == "b", 60, what="the standby to take over")
        took_over = time.monotonic()
        wait_for(
            lambda: (
                api.status("detector").get("phase") == "Succeeded"
                and api.status("detector")["stable"]["version"] == "2.0.0"
            ),
            120,
            what="2.0.0 to complete under the new leader",
        )
        first_write = wait_for(lambda: _acting(standby.writes()).get("status"), 10)
        time.sleep(1.5)  # let the watch deliver the last revisions
    finally:
        recorder.stop()

    after = replicas.lease()
    # The standby waited for the Lease to expire: it took it no earlier than a full duration
    # after the last renewal it saw, and counted the transition.
    assert (after["acquired"] - before["renewed"]).total_seconds() >= before["duration"]
    assert after["transitions"] == before["transitions"] + 1
    # The rollout went on where it stood: every step once, in order, bakes kept, verified only.
    st = api.status("detector")
    assert [(h["version"], h["outcome"]) for h in st["history"]] == [
        ("1.0.0", "Succeeded"),
        ("2.0.0", "Succeeded"),
    ]
    check_revisions(recorder.revisions, digests)
    steps = [s["rollout"]["step"] for s in recorder.revisions if s.get("target")]
    assert sorted(set(steps)) == [0, 1, 2]
    assert steps == sorted(steps), f"a step was repeated after the handover: {steps}"
    repeated = {
        key: n
        for key, n in Counter((e["reason"], e["message"]) for e in api.events("detector")).items()
        if n > 1
    }
    assert repeated == {}, f"events posted twice: {repeated}"
    assert set(desired_versions(api).values()) == {"2.0.0"}
    sys.stderr.write(
        f"\nfailover: Lease taken {took_over - killed:.1f}s after SIGKILL "
        f"(leaseDurationSeconds {before['duration']}); new leader wrote {first_write} status "
        f"patches\n"
    )


def test_sigterm_releases_the_lease_and_the_standby_takes_over_at_once(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, replicas: Replicas
) -> None:
    for proc in replicas.procs.values():
        proc.extra = (*proc.extra[:-1], "30")  # a long lease: only a release hands over early
    leader, standby = _start_pair(replicas)
    held = replicas.lease()
    assert held["duration"] == 30

    leader.stop()  # SIGTERM
    assert leader.proc is not None and leader.proc.returncode == 0, leader.logs()[-3000:]
    assert "released Lease" in leader.logs()
    stopped = time.monotonic()
    wait_for(lambda: replicas.holder() == "b", 30, what="the standby to take the released Lease")
    took_over = time.monotonic()
    after = replicas.lease()
    assert (after["acquired"] - held["renewed"]).total_seconds() < 30, (
        "the standby waited for expiry instead of taking the released Lease"
    )
    assert after["transitions"] == held["transitions"] + 1

    # The new leader acts: a release is verified and rolled out by it.
    establish(api, fleet, artifacts, "1.0.0", gateways=5)
    assert _acting(standby.writes()).get("status")

    # A standby stopped with SIGTERM exits cleanly having written nothing.
    leader.start()
    wait_for(lambda: leader.logs().count("waiting for Lease") == 2, 30, what="a standing by")
    assert _acting(leader.writes()) == {} and "lease" not in leader.writes()
    leader.stop()
    assert leader.proc is not None and leader.proc.returncode == 0
    assert replicas.holder() == "b"
    sys.stderr.write(f"\nhandover after SIGTERM: {took_over - stopped:.1f}s\n")


def test_a_leader_that_finds_another_holder_exits_without_writing_again(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, replicas: Replicas
) -> None:
    """Split brain: the Lease is taken from under the leader (as a standby would after a
    partition). At its next renewal the leader sees another holder and exits at once."""
    leader = replicas.procs["a"]
    leader.start()
    wait_for(lambda: replicas.holder() == "a", 30, what="replica a to hold the Lease")
    establish(api, fleet, artifacts, "1.0.0", gateways=3)
    for _ in range(20):  # the intruder takes it as a standby would: read, write, again on 409
        lease = replicas.coord.read_namespaced_lease(LEASE, replicas.namespace)
        lease.spec.holder_identity = "intruder_0000"
        try:
            replicas.coord.replace_namespaced_lease(LEASE, replicas.namespace, lease)
            break
        except k8s.ApiException as exc:
            if exc.status != 409:  # the leader renewed it between the read and the write
                raise
    assert leader.proc is not None
    leader.proc.wait(30)  # a renewal is due every duration / 3
    assert leader.proc.returncode == 3, leader.logs()[-3000:]
    assert "leadership lost" in leader.logs()
    assert replicas.lease()["holder"] == "intruder_0000", "the old leader wrote the Lease again"


__all__ = ["installed"]  # the module-scoped fixture of test_rbac: manifests/ applied


def test_the_manifests_rbac_lets_the_operator_hold_its_lease_and_no_other(
    installed: Installed,
) -> None:
    """The operator runs with --leader-elect as its ServiceAccount (a TokenRequest token, the
    RBAC of manifests/operator/rbac.yaml): it creates, renews and releases its Lease; it may not
    touch any other Lease."""
    assert installed.can(OPERATOR, "create", "leases.coordination.k8s.io", "-n", SYSTEM)
    for verb in ("get", "update"):
        assert installed.can(OPERATOR, verb, f"leases.coordination.k8s.io/{LEASE}", "-n", SYSTEM)
        assert not installed.can(OPERATOR, verb, "leases.coordination.k8s.io/kube-scheduler",
                                 "-n", SYSTEM)  # fmt: skip
    assert not installed.can(OPERATOR, "delete", f"leases.coordination.k8s.io/{LEASE}",
                             "-n", SYSTEM)  # fmt: skip
    assert not installed.can(OPERATOR, "create", "leases.coordination.k8s.io", "-n", "default")

    cp = installed.cp
    kubeconfig = installed.kubeconfig_for(OPERATOR)
    log_path = installed.folder / "operator-leader.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelfleet", "-v", "operator",
             # as deployed: --all-namespaces (--namespace patterns also need namespaces list/watch)
             "--all-namespaces", "--kubeconfig", str(kubeconfig),
             "--leader-elect", "--lease-namespace", SYSTEM, "--lease-duration", "6",
             "--liveness", "http://127.0.0.1:0/healthz"],  # a free port, logged
            stdout=log, stderr=subprocess.STDOUT, env=cp.env,
        )  # fmt: skip
    coord = k8s.CoordinationV1Api(Api(cp, SYSTEM).client)
    try:

        def holder() -> str:
            try:
                return str(coord.read_namespaced_lease(LEASE, SYSTEM).spec.holder_identity or "")
            except k8s.ApiException:
                return ""

        held = wait_for(holder, 60, what="the operator to create and hold its Lease")
        renewed = coord.read_namespaced_lease(LEASE, SYSTEM).spec.renew_time
        wait_for(
            lambda: coord.read_namespaced_lease(LEASE, SYSTEM).spec.renew_time != renewed,
            30, what="a renewal",
        )  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)
    logs = log_path.read_text(errors="replace")
    assert proc.returncode == 0, logs[-3000:]
    assert "released Lease" in logs and "Forbidden" not in logs, logs[-3000:]
    assert held in logs and holder() == ""
    coord.delete_namespaced_lease(LEASE, SYSTEM)

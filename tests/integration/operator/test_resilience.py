"""Crashes and outages: SIGKILLed operators and a restarted API server change no outcome."""

from __future__ import annotations

import random
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from modelfleet.core import parse_duration
from modelfleet.devcluster import ControlPlane

from .artifacts import Artifacts, release_body, rollout_steps
from .cluster import Api, StatusRecorder, desired_versions, establish
from .fleet import SimulatedFleet
from .operatorproc import OperatorProcess

pytestmark = pytest.mark.cluster


STEPS = rollout_steps("2s", "2s", "2s")


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_revisions(revisions: list[dict[str, Any]], digests: dict[str, str]) -> None:
    """Invariants over every status revision seen: verified targets only, no step skipped,
    no bake shortened."""
    bakes = [parse_duration(s["bake"]) for s in STEPS]
    previous: dict[str, Any] | None = None
    for st in revisions:
        for key in ("target", "stable"):
            snap = st.get(key)
            if snap:
                v = snap.get("verification") or {}
                assert v.get("verified") is True, f"{key} {snap['version']} not verified"
                assert v.get("digest") == snap["digest"] == digests[snap["version"]]
        if previous is not None and previous.get("target") and st.get("target"):
            same = previous["target"]["digest"] == st["target"]["digest"]
            if same:
                old_step = previous["rollout"]["step"]
                new_step = st["rollout"]["step"]
                assert 0 <= new_step - old_step <= 1, f"step jumped {old_step} -> {new_step}"
                if new_step == old_step + 1:
                    healthy = previous["rollout"].get("healthySince")
                    assert healthy, "promoted without a healthy period"
                    promoted = _time(st["rollout"]["stepStartedAt"])
                    assert promoted - _time(healthy) >= bakes[old_step], "bake shortened"
        if (
            previous is not None
            and previous.get("target")
            and not st.get("target")
            and st.get("phase") == "Succeeded"
            and st.get("reason") == "BakeCompleted"
        ):
            assert previous["rollout"]["step"] == len(STEPS) - 1, "succeeded early"
            healthy = _time(previous["rollout"]["healthySince"])
            assert _time(st["stable"]["since"]) - healthy >= bakes[-1], "last bake shortened"
        previous = st


def _run_rollout(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, disrupt: Any
) -> list[dict[str, Any]]:
    recorder = StatusRecorder(api, "detector").start()
    try:
        api.apply_release(release_body("detector", "2.0.0", artifacts, steps=STEPS))
        disrupt()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = api.status("detector")
            if st.get("phase") == "Succeeded" and st["stable"]["version"] == "2.0.0":
                break
            time.sleep(0.3)
        time.sleep(1.5)  # let the watch deliver the last revisions
    finally:
        recorder.stop()
    return recorder.revisions


def test_sigkill_at_random_points_ends_like_an_uninterrupted_rollout(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=50)
    digests = {v: artifacts.sign(v).digest for v in ("1.0.0", "2.0.0")}
    rng = random.Random(20240611)
    kills: list[float] = []

    def chaos() -> None:
        for _ in range(10):
            time.sleep(rng.uniform(0.2, 1.6))
            operator.kill()
            kills.append(time.monotonic())
            operator.start()

    revisions = _run_rollout(api, artifacts, fleet, chaos)
    assert len(kills) == 10
    st = api.status("detector")
    assert (st["phase"], st["stable"]["version"]) == ("Succeeded", "2.0.0")
    assert [(h["version"], h["outcome"]) for h in st["history"]] == [
        ("1.0.0", "Succeeded"),
        ("2.0.0", "Succeeded"),
    ]
    check_revisions(revisions, digests)
    steps = [s["rollout"]["step"] for s in revisions if s.get("target")]
    assert sorted(set(steps)) == [0, 1, 2], "every cohort was rolled out"
    assert set(desired_versions(api).values()) == {"2.0.0"}


def test_operator_reconnects_after_an_api_server_restart_and_carries_on(
    api: Api,
    artifacts: Artifacts,
    fleet: SimulatedFleet,
    operator: OperatorProcess,
    control_plane: ControlPlane,
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=40)
    digests = {v: artifacts.sign(v).digest for v in ("1.0.0", "2.0.0")}

    def outage() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (api.status("detector").get("target") or {}).get("version") == "2.0.0":
                break
            time.sleep(0.2)
        control_plane.stop_apiserver()
        time.sleep(3)
        control_plane.start_apiserver()

    revisions = _run_rollout(api, artifacts, fleet, outage)
    st = api.status("detector")
    assert (st["phase"], st["stable"]["version"]) == ("Succeeded", "2.0.0")
    assert operator.proc is not None and operator.proc.poll() is None, "the same process"
    check_revisions(revisions, digests)
    assert set(desired_versions(api).values()) == {"2.0.0"}


def test_an_operator_whose_probe_address_is_taken_exits_naming_it(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = OperatorProcess(
            control_plane, namespace, tmp_path, liveness=f"http://127.0.0.1:{port}/healthz"
        )
        try:
            with pytest.raises(AssertionError, match="operator exited") as failed:
                proc.start()
        finally:
            proc.stop()
    assert f"--liveness: cannot listen on 127.0.0.1:{port}" in str(failed.value)

"""200 gateways running the real agent code (``modelfleet simulate``) against the real fleet API
over mutual TLS, driven by the real operator: a 3-step rollout reaches Succeeded cohort by
cohort, and a release with an injected regression is aborted at its canary, after which every
gateway reports the stable version Active again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelfleet.demo.models import ModelShelf
from modelfleet.demo.stack import FleetApiSettings, OperatorSettings, SimulatorSettings, Stack
from modelfleet.demo.watch import FleetView, Observer
from tests.kubekit import wait_for_events

from .loop import apply_release, gateway_models, release_body, wait_for

pytestmark = pytest.mark.cluster

GATEWAYS = 200
STEPS = [
    {"name": "canary", "percent": 10, "bake": "2s"},
    {"name": "half", "percent": 50, "bake": "2s"},
    {"name": "fleet", "percent": 100, "bake": "2s"},
]
GATES = {"maxFailedGateways": 0, "maxErrorRate": 0.05, "minReportingRatio": 0.8, "minRequests": 20}


def release(shelf: ModelShelf, version: str) -> dict[str, Any]:
    return release_body(shelf, version, STEPS, GATES)


class Tracker:
    """What every view showed: steps in order, and the most gateways ever on ``version``."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.steps: list[int] = []
        self.peak_by_step: dict[int, int] = {}

    def __call__(self, v: FleetView) -> None:
        r = v.release
        if r.target != self.version or r.step is None:
            return
        if not self.steps or self.steps[-1] != r.step:
            self.steps.append(r.step)
        running = sum(n for (ver, _), n in v.counts.items() if ver == self.version)
        self.peak_by_step[r.step] = max(self.peak_by_step.get(r.step, 0), running)


def test_200_gateways_roll_out_in_three_steps_and_a_regression_aborts_at_the_canary(
    stack: Stack, shelf: ModelShelf, observer: Observer, tmp_path: Path
) -> None:
    stack.fleet_ca_init()
    stack.start_fleet_api(FleetApiSettings())
    stack.start_operator(OperatorSettings(file_roots=(shelf.root,)))
    behaviour = {"2.0.0": {"errorRate": 0.4}}
    stack.start_simulator(
        SimulatorSettings(gateways=GATEWAYS, behaviour=behaviour),
        trust_policy=shelf.write_policy(tmp_path / "trust-policy.yaml"),
    )
    from kubernetes import client

    client.CustomObjectsApi(stack.api).create_cluster_custom_object(
        "modelfleet.dev", "v1alpha1", "trustpolicies", shelf.policy_manifest()
    )

    # 1. A healthy first release: canary, half, fleet, each only after the previous baked.
    first = Tracker("1.0.0")
    apply_release(stack, release(shelf, "1.0.0"))
    view = wait_for(
        observer, stack,
        lambda v: v.release.phase == "Succeeded" and v.release.stable == "1.0.0" and v.all_on("1.0.0"),
        timeout=180, what="1.0.0 on all 200 gateways", each=first,
    )  # fmt: skip
    assert first.steps == [0, 1, 2]
    cohorts = view.release.cohorts
    assert [c.name for c in cohorts] == ["canary", "half", "fleet"]
    assert sum(c.assigned for c in cohorts) == GATEWAYS
    assert all(c.active == c.assigned and c.failed == 0 for c in cohorts)
    # No cohort was skipped: while a step held, no gateway beyond its cohorts ran the version.
    assert first.peak_by_step[0] <= cohorts[0].assigned
    assert first.peak_by_step[1] <= cohorts[0].assigned + cohorts[1].assigned
    digest_v1 = shelf.build("1.0.0").digest
    assert {(m["version"], m["digest"], m["state"]) for m in gateway_models(stack).values()} == {
        ("1.0.0", digest_v1, "Active")
    }

    # 2. A release whose gateways answer 40% errors: aborted at the canary, all back on 1.0.0.
    second = Tracker("2.0.0")
    apply_release(stack, release(shelf, "2.0.0"))
    view = wait_for(
        observer, stack,
        lambda v: v.release.spec_version == "2.0.0" and v.release.phase == "Aborted"
        and v.all_on("1.0.0"),
        timeout=120, what="2.0.0 aborted and every gateway on 1.0.0", each=second,
    )  # fmt: skip
    assert second.steps == [0], "the regression never left the canary step"
    assert 0 < second.peak_by_step[0] <= cohorts[0].assigned
    assert view.release.stable == "1.0.0"
    assert view.release.gate_reason == "ErrorRateExceeded"
    wait_for_events(observer.core, observer.namespace, observer.name, "ErrorRateExceeded")
    assert [(h.get("version"), h.get("outcome")) for h in view.release.history][-2:] == [
        ("1.0.0", "Succeeded"),
        ("2.0.0", "Aborted"),
    ]
    assert {(m["version"], m["digest"], m["state"]) for m in gateway_models(stack).values()} == {
        ("1.0.0", digest_v1, "Active")
    }

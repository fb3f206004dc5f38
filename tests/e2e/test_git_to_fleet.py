"""The whole loop from Git to the gateways, every piece a real process: a bare git repository ->
``modelfleet sync`` -> kube-apiserver -> ``modelfleet operator`` -> ``modelfleet fleet-api``
(mTLS) -> ``modelfleet simulate`` (the real agent code) -> EdgeGateway status. A release is a
commit; rolling back is ``modelfleet rollback``, a revert commit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from modelfleet.demo.gitrepo import FleetRepo
from modelfleet.demo.models import ModelShelf
from modelfleet.demo.stack import (
    FleetApiSettings,
    OperatorSettings,
    SimulatorSettings,
    Stack,
    SyncSettings,
)
from modelfleet.demo.watch import FleetView, Observer
from tests.kubekit import wait_for_events

from .loop import SHORT_ROLLOUT, gateway_models, wait_for

pytestmark = pytest.mark.cluster

GATEWAYS = 20


def settled(version: str, stable: str | None = None) -> Callable[[FleetView], bool]:
    def check(v: FleetView) -> bool:
        r = v.release
        return (
            r.spec_version == version
            and r.observed
            and r.phase == "Succeeded"
            and r.stable == (stable or version)
            and v.all_on(version)
        )

    return check


def test_revert_commit_returns_every_gateway_to_the_previous_version(
    stack: Stack, shelf: ModelShelf, observer: Observer, tmp_path: Path
) -> None:
    repo = FleetRepo(tmp_path / "git", namespace=stack.namespace, name="detector")
    repo.create(shelf.policy_manifest())
    stack.fleet_ca_init()
    stack.start_fleet_api(FleetApiSettings())
    stack.start_operator(OperatorSettings(file_roots=(shelf.root,)))
    stack.start_sync(SyncSettings(repo_url=repo.url, interval=1.0))
    stack.start_simulator(
        SimulatorSettings(gateways=GATEWAYS),
        trust_policy=shelf.write_policy(tmp_path / "trust-policy.yaml"),
    )

    v1 = repo.release(shelf.build("1.0.0"), trust_policy=shelf.policy_name, rollout=SHORT_ROLLOUT)
    stack.wait_synced(v1.commit)
    wait_for(observer, stack, settled("1.0.0"), what="1.0.0 on every gateway")

    v2 = repo.release(shelf.build("2.0.0"))
    stack.wait_synced(v2.commit)
    steps: list[int] = []

    def record_steps(v: FleetView) -> None:
        step = v.release.step
        if v.release.target == "2.0.0" and step is not None and (not steps or steps[-1] != step):
            steps.append(step)

    wait_for(
        observer, stack, settled("2.0.0"), what="2.0.0 rolled out",
        each=record_steps,
    )  # fmt: skip
    assert steps == [0, 1], "2.0.0 went canary, then fleet"

    rollback = repo.rollback()
    assert rollback.version == "1.0.0"
    assert "Revert" in repo.git("log", "-1", "--format=%s")
    stack.wait_synced(rollback.commit)
    view = wait_for(observer, stack, settled("1.0.0"), what="every gateway back on 1.0.0")

    # Every EdgeGateway, as the fleet API wrote it from its agent's report: 1.0.0, its digest.
    reports = gateway_models(stack)
    assert len(reports) == GATEWAYS
    v1_digest = shelf.build("1.0.0").digest
    assert {(m["version"], m["digest"], m["state"]) for m in reports.values()} == {
        ("1.0.0", v1_digest, "Active")
    }
    # Git matches the fleet: the live object came from the revert commit.
    assert view.release.source_revision == rollback.commit
    assert view.release.revision == rollback.commit
    # A return to a version that was stable before goes to every gateway in one step.
    wait_for_events(observer.core, observer.namespace, observer.name, "ImmediateRollback")
    outcomes = [(h.get("version"), h.get("outcome")) for h in view.release.history]
    assert outcomes[-3:] == [("1.0.0", "Succeeded"), ("2.0.0", "Succeeded"), ("1.0.0", "Succeeded")]

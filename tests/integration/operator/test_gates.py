"""Health gates on the real API server: regressions abort, silence pauses."""

from __future__ import annotations

import time

import pytest

from .artifacts import Artifacts, release_body
from .cluster import Api, desired_versions, establish, stable_is, status_where, wait_for
from .fleet import SimulatedFleet
from .operatorproc import OperatorProcess

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        ({"errors": 300}, "ErrorRateExceeded"),
        ({"p95": 900.0}, "LatencyP95Exceeded"),
        ({"fail": True}, "TooManyFailedGateways"),
    ],
    ids=["error-rate", "latency", "failed-activations"],
)
def test_regression_in_the_canary_aborts_and_every_gateway_returns_to_stable(  # noqa: PLR0917
    api: Api,
    artifacts: Artifacts,
    fleet: SimulatedFleet,
    operator: OperatorProcess,
    profile: dict[str, object],
    reason: str,
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=60)
    fleet.profile("2.0.0", **profile)
    api.apply_release(release_body("detector", "2.0.0", artifacts))
    st = wait_for(
        lambda: (s := api.status("detector")).get("phase") == "Aborted" and s, 40, what="Aborted"
    )
    assert st["reason"] == reason
    assert st["rollout"]["step"] == 0, "aborted in the canary"
    assert st["stable"]["version"] == "1.0.0"
    assert st["history"][-1]["outcome"] == "Aborted"
    assert set(desired_versions(api).values()) == {"1.0.0"}
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds["Degraded"] == "True" and conds["Ready"] == "False"
    api.wait_for_events("detector", reason, type="Warning")


def test_silence_is_not_health_too_few_reports_pause_and_never_promote(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=60)
    fleet.profile("2.0.0", silent=True)
    api.apply_release(release_body("detector", "2.0.0", artifacts))
    st = wait_for(
        lambda: (s := api.status("detector")).get("phase") == "Paused" and s, 30, what="Paused"
    )
    assert st["reason"] == "Inconclusive"
    assert st["rollout"]["gates"]["result"] == "Inconclusive"
    deadline = time.monotonic() + 6  # several bakes and timer intervals
    while time.monotonic() < deadline:
        st = api.status("detector")
        assert st["rollout"]["step"] == 0
        assert st["phase"] == "Paused"
        time.sleep(0.3)
    # Evidence arrives: the rollout resumes and completes.
    fleet.profile("2.0.0")
    status_where(api, "2.0.0 to succeed once reports arrive", stable_is("2.0.0"), 60)
    assert set(desired_versions(api).values()) == {"2.0.0"}

"""A rollout end to end: verified, promoted step by step after each bake, Succeeded."""

from __future__ import annotations

import pytest

from .conftest import (
    Api,
    Artifacts,
    FleetDriver,
    OperatorProcess,
    desired_versions,
    release_body,
    wait_for,
)

pytestmark = pytest.mark.cluster


def test_three_step_rollout_to_200_gateways_promotes_step_by_step(
    api: Api, artifacts: Artifacts, fleet: FleetDriver, operator: OperatorProcess
) -> None:
    fleet.create(200)
    api.apply_release(release_body("detector", "1.0.0", artifacts))
    fleet.start()
    wait_for(lambda: api.status("detector").get("phase") == "Succeeded", 60, what="first release")
    assert api.status("detector")["stable"]["version"] == "1.0.0"

    steps_seen: list[int] = []

    def progressed() -> bool:
        st = api.status("detector")
        if st.get("phase") == "Progressing" and st.get("target", {}).get("version") == "2.0.0":
            step = st["rollout"]["step"]
            if not steps_seen or steps_seen[-1] != step:
                steps_seen.append(step)
        return st.get("phase") == "Succeeded" and st.get("stable", {}).get("version") == "2.0.0"

    api.apply_release(release_body("detector", "2.0.0", artifacts))
    wait_for(progressed, 90, interval=0.1, what="2.0.0 to succeed")
    assert steps_seen == [0, 1, 2]
    st = api.status("detector")
    assert st["target"] if "target" in st else True
    assert set(desired_versions(api).values()) == {"2.0.0"}
    outcomes = [(h["version"], h["outcome"]) for h in st["history"]]
    assert outcomes[-1] == ("2.0.0", "Succeeded")
    cohorts = st["rollout"]["cohorts"]
    assert sum(c["assigned"] for c in cohorts) == 200

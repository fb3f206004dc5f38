"""One unreadable report never hides a gateway from the gates (issue 10, item 10).

The fleet API now refuses a report the operator could not read back, but EdgeGateway status can
still hold one (written before that, or by anyone allowed to write status). The canary gateways
here report a health window of ``"0.5s"``, which the operator's duration grammar cannot read.
The operator used to ignore such a gateway entirely: the canary cohort was empty and its gates
passed. Now the gateway stays in its cohort, counted without what cannot be read.

EdgeGateway status is written directly here, not produced by simulated agents through the fleet
API: putting an unreadable status in place is the attack itself, and the real fleet API refuses
to write one (``STATUS_WRITTEN_BECAUSE``).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from .artifacts import Artifacts, release_body
from .cluster import Api, establish, wait_for
from .operatorproc import OperatorProcess
from .reports import StatusWriter

pytestmark = pytest.mark.cluster


STATUS_WRITTEN_BECAUSE = (
    "the real fleet API refuses a health window the operator cannot read, so no real agent can "
    "put one in status; these tests are about such a status already being there (written "
    "before, or by anyone allowed to write EdgeGateway status)"
)


def judged(api: Api, expected: str) -> dict[str, Any] | None:
    """The status once 2.0.0 is judged: ``expected``, or Succeeded with 2.0.0 stable (the bug)."""
    st = api.status("detector")
    if st.get("phase") == expected and (st.get("target") or {}).get("version") == "2.0.0":
        return st
    if st.get("phase") == "Succeeded" and (st.get("stable") or {}).get("version") == "2.0.0":
        return st
    return None


def test_a_failing_canary_with_an_unreadable_health_window_still_aborts(
    api: Api, artifacts: Artifacts, fleet: StatusWriter, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=60)
    fleet.profile("2.0.0", fail=True, window="0.5s")
    api.apply_release(release_body("detector", "2.0.0", artifacts))
    st = wait_for(lambda: judged(api, "Aborted"), 60, what="the rollout of 2.0.0 to end")
    assert st["phase"] == "Aborted", st
    assert st["reason"] == "TooManyFailedGateways"
    assert st["rollout"]["step"] == 0, "aborted in the canary"
    assert st["stable"]["version"] == "1.0.0"
    assert "status partly unreadable" in operator.logs()


def test_a_canary_whose_health_cannot_be_read_holds_the_rollout_and_never_promotes(
    api: Api, artifacts: Artifacts, fleet: StatusWriter, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=60)
    fleet.profile("2.0.0", errors=900, window="0.5s")  # failing, in a window nobody can read
    api.apply_release(release_body("detector", "2.0.0", artifacts))
    st = wait_for(lambda: judged(api, "Paused"), 60, what="the canary step to be judged")
    assert st["phase"] == "Paused", st
    assert st["reason"] == "Inconclusive"
    canary = st["rollout"]["cohorts"][0]
    assert canary["assigned"] > 0 and canary["reporting"] == 0, canary
    deadline = time.monotonic() + 6  # several bakes and timer intervals
    while time.monotonic() < deadline:
        st = api.status("detector")
        assert st["rollout"]["step"] == 0 and st["phase"] == "Paused"
        time.sleep(0.3)

"""Manual control: spec.paused, and the one-shot promote / abort / retry annotations."""

from __future__ import annotations

import time

import pytest

from .artifacts import Artifacts, release_body, rollout_steps
from .cluster import Api, canary, desired_versions, establish, status_where, wait_for
from .fleet import SimulatedFleet
from .operatorproc import OperatorProcess

pytestmark = pytest.mark.cluster


LONG_BAKE = rollout_steps("1h", "1h", "1h")


def test_spec_paused_holds_the_step_and_clearing_it_resumes(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=40)
    api.apply_release(release_body("detector", "2.0.0", artifacts, paused=True))
    st = status_where(api, "PausedBySpec", lambda s: s.get("reason") == "PausedBySpec")
    assert st["phase"] == "Paused"
    time.sleep(5)  # several bakes of 2s: nothing moves
    st = api.status("detector")
    assert (st["phase"], st["rollout"]["step"]) == ("Paused", 0)
    api.apply_release(release_body("detector", "2.0.0", artifacts, paused=False))
    status_where(
        api,
        "2.0.0 to succeed",
        lambda s: s.get("phase") == "Succeeded" and s["stable"]["version"] == "2.0.0",
    )


def test_promote_abort_and_retry_actions_run_once_per_id(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=40)
    canary(api, artifacts, "2.0.0", LONG_BAKE)

    api.action("detector", "promote", "p-1")
    st = status_where(api, "promoted", lambda s: s["rollout"].get("lastActionId") == "p-1")
    assert st["rollout"]["step"] == 1
    # The same id again (e.g. re-applied by Git) does nothing more.
    api.patch_release("detector", {"metadata": {"annotations": {"touch": "1"}}})
    api.action("detector", "promote", "p-1")
    time.sleep(3)
    assert api.status("detector")["rollout"]["step"] == 1

    api.action("detector", "abort", "a-1")
    st = status_where(api, "Aborted", lambda s: s.get("phase") == "Aborted")
    assert st["reason"] == "ManualAbort"
    assert set(desired_versions(api).values()) == {"1.0.0"}
    time.sleep(2)
    assert api.status("detector")["phase"] == "Aborted", "an abort is not undone by itself"

    api.action("detector", "retry", "r-1")
    st = status_where(
        api, "retried", lambda s: s.get("phase") == "Progressing" and s["rollout"]["step"] == 0
    )
    assert st["target"]["version"] == "2.0.0"
    assert st["rollout"]["lastActionId"] == "r-1"
    time.sleep(3)
    assert api.status("detector")["rollout"]["step"] == 0, "retry ran once"


def test_kubectl_annotate_without_an_id_runs_once_and_ignored_actions_say_why(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    def annotate(*pairs: str) -> None:
        api.cp.kubectl("annotate", "--overwrite", "-n", api.namespace, "mr/detector", *pairs)

    establish(api, fleet, artifacts, "1.0.0", gateways=40)
    # A phase where the action means nothing: an event says when it applies.
    annotate("modelfleet.dev/action=retry")
    event = api.wait_for_events("detector", "ActionIgnored", timeout=20)[0]
    assert "retry applies after Rejected or Aborted" in event["message"]
    annotate("modelfleet.dev/action-")
    wait_for(lambda: "lastActionId" not in api.status("detector")["rollout"], 20, what="cleared")

    canary(api, artifacts, "2.0.0", LONG_BAKE)
    annotate("modelfleet.dev/action=promote")  # no action-id: what a kubectl user types
    st = status_where(api, "promoted", lambda s: s["rollout"]["step"] == 1)
    assert st["rollout"]["lastActionId"] == "auto:promote"
    time.sleep(3)
    assert api.status("detector")["rollout"]["step"] == 1, "ran once while annotated"
    annotate("modelfleet.dev/action-")
    wait_for(lambda: "lastActionId" not in api.status("detector")["rollout"], 20, what="cleared")
    annotate("modelfleet.dev/action=promote")
    status_where(api, "promoted again", lambda s: s["rollout"]["step"] == 2)

    annotate("modelfleet.dev/action=nuke", "modelfleet.dev/action-id=n-1")
    events = api.wait_for_events("detector", "ActionIgnored", containing="nuke", timeout=20)
    assert events[0]["type"] == "Warning"
    assert "use promote, abort or retry" in events[0]["message"]
    st = api.status("detector")
    assert (st["phase"], st["rollout"]["step"]) == ("Progressing", 2)

"""Status merge patches: cleared sub-fields become null, unchanged fields are not sent."""

from __future__ import annotations

from modelfleet.api.patch import merge_diff, status_merge_patch
from modelfleet.controller.patching import conditional, newer, observation_only


def test_a_cleared_sub_field_is_sent_as_null() -> None:
    stored = {"rollout": {"step": 1, "healthySince": "t1", "cohorts": [{"name": "a"}]}}
    patch = status_merge_patch(stored, {"rollout": {"step": 2, "cohorts": [{"name": "a"}]}})
    assert patch == {"rollout": {"step": 2, "healthySince": None}}


def test_unchanged_fields_are_not_sent() -> None:
    stored = {"phase": "Progressing", "rollout": {"step": 1}}
    assert status_merge_patch(stored, {"phase": "Progressing", "rollout": {"step": 1}}) == {}


def test_a_removed_top_level_field_is_deleted_only_if_stored() -> None:
    assert status_merge_patch({"target": {"version": "1"}}, {"target": None}) == {"target": None}
    assert status_merge_patch({}, {"target": None}) == {}


def test_lists_are_replaced_whole() -> None:
    assert merge_diff([1, 2, 3], [1]) == [1]
    assert merge_diff({"a": [1, 2]}, {"a": [2]}) == {"a": [2]}


def test_the_write_is_conditional_on_the_resource_version() -> None:
    assert conditional("42", {"phase": "Aborted"}) == {
        "status": {"phase": "Aborted"},
        "metadata": {"resourceVersion": "42"},
    }
    assert conditional(None, {"phase": "Aborted"}) == {"status": {"phase": "Aborted"}}


def test_the_newer_copy_of_an_object_wins() -> None:
    a = {"metadata": {"resourceVersion": "10"}}
    b = {"metadata": {"resourceVersion": "12"}}
    assert newer(a, b) is b
    assert newer(b, a) is b
    assert newer(a, None) is a
    assert newer(None, b) is b
    assert newer({"metadata": {"resourceVersion": "x"}}, b) == {
        "metadata": {"resourceVersion": "x"}
    }


def test_moving_counts_and_gate_figures_are_observations_only() -> None:
    stored = {
        "phase": "Progressing",
        "rollout": {"step": 1, "cohorts": [{"assigned": 5, "active": 1}],
                    "gates": {"result": "Wait", "reason": "NotConverged", "requests": 10}},
    }  # fmt: skip
    moved = {
        "rollout": {"step": 1, "cohorts": [{"assigned": 5, "active": 3}],
                    "gates": {"result": "Wait", "reason": "NotConverged", "requests": 90}},
    }  # fmt: skip
    assert observation_only(stored, moved)


def test_a_new_gate_result_step_or_timestamp_is_a_decision() -> None:
    stored = {"rollout": {"step": 1, "gates": {"result": "Wait", "reason": "NotConverged"}}}
    assert not observation_only(
        stored, {"rollout": {"step": 1, "gates": {"result": "Pass", "reason": "GatesHeld"}}}
    )
    assert not observation_only(
        stored, {"rollout": {"step": 2, "gates": stored["rollout"]["gates"]}}
    )
    assert not observation_only(
        stored,
        {"rollout": {"step": 1, "healthySince": "t", "gates": stored["rollout"]["gates"]}},
    )
    assert not observation_only({"phase": "Progressing"}, {"phase": "Aborted"})

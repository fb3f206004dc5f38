"""Which watch events are acted on at once (the rest waits for the release's timer)."""

from __future__ import annotations

from typing import Any

from modelfleet.controller.reconcile import needs_attention


def body(
    generation: int = 1, status: dict[str, Any] | None = None, **annotations: str
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation, "annotations": annotations},
        "status": status or {},
    }


def test_a_release_never_reconciled_needs_attention() -> None:
    assert needs_attention(body())


def test_a_new_spec_generation_needs_attention() -> None:
    assert needs_attention(body(2, {"phase": "Progressing", "observedGeneration": 1}))


def test_an_observed_generation_does_not() -> None:
    assert not needs_attention(body(2, {"phase": "Progressing", "observedGeneration": 2}))


def test_a_new_action_id_needs_attention_once() -> None:
    st = {"phase": "Progressing", "observedGeneration": 1, "rollout": {"lastActionId": "a"}}
    ann = {"modelfleet.dev/action": "promote", "modelfleet.dev/action-id": "b"}
    assert needs_attention(body(1, st, **ann))
    st["rollout"] = {"lastActionId": "b"}
    assert not needs_attention(body(1, st, **ann))


def test_an_action_without_id_needs_attention_once() -> None:
    st: dict[str, Any] = {"phase": "Progressing", "observedGeneration": 1}
    assert needs_attention(body(1, st, **{"modelfleet.dev/action": "abort"}))
    st["rollout"] = {"lastActionId": "auto:abort"}
    assert not needs_attention(body(1, st, **{"modelfleet.dev/action": "abort"}))


def test_removing_an_action_annotated_without_id_needs_attention() -> None:
    st = {"phase": "Progressing", "observedGeneration": 1, "rollout": {"lastActionId": "auto:x"}}
    assert needs_attention(body(1, st))
    st["rollout"] = {"lastActionId": "given-id"}
    assert not needs_attention(body(1, st))


def test_an_unknown_action_needs_attention_to_be_reported() -> None:
    st = {"phase": "Progressing", "observedGeneration": 1}
    assert needs_attention(body(1, st, **{"modelfleet.dev/action": "nuke"}))

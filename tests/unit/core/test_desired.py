"""desired_state: what every gateway is told, per release phase, step and conflict."""

from __future__ import annotations

import pytest

from modelfleet.core import (
    Assigner,
    LabelSelector,
    Phase,
    Release,
    Role,
    bucket,
    desired_state,
)

from .factories import MODEL, NS, gateway, release, rolling, settled, snap

# A canary (bucket < 500 for the default salt) and a gateway outside the 5 % cohort.
CANARY = next(f"gw-{i}" for i in range(1000) if bucket(f"{NS}/{MODEL}", f"gw-{i}") < 500)
OUTSIDE = next(f"gw-{i}" for i in range(1000) if bucket(f"{NS}/{MODEL}", f"gw-{i}") >= 500)


def told(gw_name: str, *releases: Release, labels: dict[str, str] | None = None) -> str | None:
    result = desired_state(gateway(gw_name, labels=labels), releases)
    a = result.get(MODEL)
    if a is None:
        return "-"
    return None if a.snapshot is None else a.snapshot.version


@pytest.mark.parametrize(
    ("phase", "step", "name", "labels", "expected"),
    [
        (Phase.PROGRESSING, 0, CANARY, None, "2.0.0"),
        (Phase.PROGRESSING, 0, OUTSIDE, None, "1.0.0"),
        (Phase.PROGRESSING, 0, OUTSIDE, {"ring": "early"}, "1.0.0"),
        (Phase.PROGRESSING, 1, OUTSIDE, {"ring": "early"}, "2.0.0"),
        (Phase.PROGRESSING, 1, OUTSIDE, None, "1.0.0"),
        (Phase.PROGRESSING, 2, OUTSIDE, None, "2.0.0"),
        (Phase.PAUSED, 0, CANARY, None, "2.0.0"),
        (Phase.PAUSED, 0, OUTSIDE, None, "1.0.0"),
        (Phase.SUCCEEDED, 2, OUTSIDE, None, "2.0.0"),
        (Phase.VERIFYING, 0, CANARY, None, "1.0.0"),
        (Phase.PENDING, 0, CANARY, None, "1.0.0"),
        (Phase.ABORTED, 2, CANARY, None, "1.0.0"),
        (Phase.ABORTED, 2, OUTSIDE, None, "1.0.0"),
        (Phase.REJECTED, 0, CANARY, None, "1.0.0"),
    ],
)
def test_target_only_for_cohorts_reached_in_target_phases(
    phase: Phase, step: int, name: str, labels: dict[str, str] | None, expected: str
) -> None:
    r = release(status=rolling(phase=phase, step=step))
    assert told(name, r, labels=labels) == expected


def test_settled_release_tells_everyone_stable() -> None:
    r = release("1.0.0", status=settled("1.0.0"))
    assert told(CANARY, r) == told(OUTSIDE, r) == "1.0.0"


def test_first_release_reaches_only_its_cohorts_others_get_nothing() -> None:
    r = release(status=rolling(stable=None, step=0))
    assert told(CANARY, r) == "2.0.0"
    assert told(OUTSIDE, r) is None
    a = desired_state(gateway(OUTSIDE), [r])[MODEL]
    assert a.role is Role.NONE


def test_aborted_first_release_tells_nobody_anything() -> None:
    r = release(status=rolling(stable=None, phase=Phase.ABORTED, step=1))
    assert told(CANARY, r) is None


def test_assignment_names_release_role_and_step() -> None:
    r = release(status=rolling(step=1, phase=Phase.PAUSED))
    a = desired_state(gateway(CANARY), [r])[MODEL]
    assert (a.release, a.role, a.step, a.conflict) == ("detector", Role.TARGET, 1, ())
    s = desired_state(gateway(CANARY), [release("1.0.0", status=settled())])[MODEL]
    assert (s.role, s.step) == (Role.STABLE, None)


def test_gateway_not_covered_gets_no_entry() -> None:
    r = release(selector=LabelSelector.of({"tier": "retail"}), status=rolling())
    assert desired_state(gateway(CANARY, labels={"tier": "lab"}), [r]) == {}
    assert desired_state(gateway(CANARY, namespace="elsewhere"), [r]) == {}


def test_conflict_with_agreeing_stables_keeps_stable_and_names_both() -> None:
    a = release(name="a", status=rolling(step=2))
    b = release(name="b", status=settled("1.0.0"))
    got = desired_state(gateway(CANARY), [a, b])[MODEL]
    assert got.snapshot == snap("1.0.0", since=got.snapshot.since if got.snapshot else None)
    assert got.conflict == ("a", "b")
    assert got.role is Role.STABLE
    assert got.release == "a,b"


def test_conflict_with_different_stables_assigns_nothing() -> None:
    a = release(name="a", status=rolling(step=2))
    b = release(name="b", status=settled("0.9.0"))
    got = desired_state(gateway(CANARY), [a, b])[MODEL]
    assert got.snapshot is None
    assert got.role is Role.NONE
    assert got.conflict == ("a", "b")


def test_conflict_only_where_selectors_overlap() -> None:
    a = release(name="a", selector=LabelSelector.of({"tier": "retail"}), status=rolling(step=2))
    b = release(name="b", selector=LabelSelector.of({"site": "x"}), status=settled("0.9.0"))
    only_a = desired_state(gateway(CANARY, labels={"tier": "retail"}), [a, b])[MODEL]
    both = desired_state(gateway(CANARY, labels={"tier": "retail", "site": "x"}), [a, b])[MODEL]
    assert only_a.snapshot is not None and only_a.snapshot.version == "2.0.0"
    assert both.conflict == ("a", "b")


def test_releases_of_different_models_are_independent() -> None:
    det = release(status=rolling(step=2))
    other = release("5.0.0", name="ocr", model="ocr", status=settled("5.0.0"))
    got = desired_state(gateway(CANARY), [det, other])
    assert set(got) == {"detector", "ocr"}
    assert got["ocr"].conflict == ()


def test_assigner_answers_like_desired_state() -> None:
    rs = [release(status=rolling(step=0))]
    assigner = Assigner(rs)
    for name in (CANARY, OUTSIDE):
        assert assigner.desired_state(gateway(name)) == desired_state(gateway(name), rs)

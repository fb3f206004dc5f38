"""Label selectors with Kubernetes semantics."""

from __future__ import annotations

import pytest

from modelfleet.core import LabelSelector, Operator, Requirement

LABELS = {"tier": "retail", "ring": "early", "region": "eu"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        (LabelSelector(), True),
        (LabelSelector.of({"tier": "retail"}), True),
        (LabelSelector.of({"tier": "retail", "ring": "early"}), True),
        (LabelSelector.of({"tier": "lab"}), False),
        (LabelSelector.of({"missing": "x"}), False),
        (LabelSelector.of(None, Requirement("region", Operator.IN, frozenset({"eu", "us"}))), True),
        (LabelSelector.of(None, Requirement("region", Operator.IN, frozenset({"us"}))), False),
        (LabelSelector.of(None, Requirement("absent", Operator.IN, frozenset({"x"}))), False),
        (LabelSelector.of(None, Requirement("region", Operator.NOT_IN, frozenset({"us"}))), True),
        (LabelSelector.of(None, Requirement("region", Operator.NOT_IN, frozenset({"eu"}))), False),
        (LabelSelector.of(None, Requirement("absent", Operator.NOT_IN, frozenset({"x"}))), True),
        (LabelSelector.of(None, Requirement("ring", Operator.EXISTS)), True),
        (LabelSelector.of(None, Requirement("absent", Operator.EXISTS)), False),
        (LabelSelector.of(None, Requirement("absent", Operator.DOES_NOT_EXIST)), True),
        (LabelSelector.of(None, Requirement("ring", Operator.DOES_NOT_EXIST)), False),
        (
            LabelSelector.of(
                {"tier": "retail"},
                Requirement("ring", Operator.EXISTS),
                Requirement("region", Operator.NOT_IN, frozenset({"eu"})),
            ),
            False,
        ),
    ],
)
def test_selector_matching(selector: LabelSelector, matches: bool) -> None:
    assert selector.matches(LABELS) is matches


def test_empty_selector_matches_unlabelled_objects() -> None:
    assert LabelSelector().is_empty
    assert LabelSelector().matches({})


def test_equal_selectors_compare_equal_whatever_the_label_order() -> None:
    assert LabelSelector.of({"a": "1", "b": "2"}) == LabelSelector.of({"b": "2", "a": "1"})

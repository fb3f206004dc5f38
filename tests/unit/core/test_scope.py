"""TrustPolicy scope: which namespaces may name a policy, and how the scope reads in a reason."""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.core.scope import NamespaceScope, parse_scope

PROD = {"env": "prod"}


@pytest.mark.parametrize(
    ("spec", "namespace", "labels", "allowed"),
    [
        ({}, "anything", {}, True),  # no scope: every namespace, as before scopes existed
        ({"namespaces": ["a", "b"]}, "a", {}, True),
        ({"namespaces": ["a", "b"]}, "c", PROD, False),
        ({"namespaces": []}, "a", {}, False),  # an empty list names nobody
        ({"namespaceSelector": {"matchLabels": PROD}}, "c", PROD, True),
        ({"namespaceSelector": {"matchLabels": PROD}}, "c", {"env": "dev"}, False),
        ({"namespaceSelector": {}}, "c", {}, True),  # an empty selector selects everything
        ({"namespaces": ["a"], "namespaceSelector": {"matchLabels": PROD}}, "a", {}, True),
        ({"namespaces": ["a"], "namespaceSelector": {"matchLabels": PROD}}, "c", PROD, True),
        ({"namespaces": ["a"], "namespaceSelector": {"matchLabels": PROD}}, "c", {}, False),
        (
            {"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}},
            "c", PROD, False,
        ),
    ],
)  # fmt: skip
def test_a_namespace_is_in_scope_when_listed_or_selected(
    spec: dict[str, Any], namespace: str, labels: dict[str, str], allowed: bool
) -> None:
    assert parse_scope(spec).allows(namespace, labels) is allowed


def test_the_scope_reads_as_one_line() -> None:
    scope = parse_scope(
        {
            "namespaces": ["b", "a"],
            "namespaceSelector": {
                "matchLabels": PROD,
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["y", "x"]}],
            },
        }
    )
    assert scope.describe() == "namespaces [a, b] or namespaceSelector env=prod,tier in (x,y)"
    assert NamespaceScope().describe() == "every namespace"


def test_labels_are_read_only_when_the_selector_decides() -> None:
    scope = parse_scope({"namespaces": ["a"], "namespaceSelector": {"matchLabels": PROD}})
    assert not scope.needs_labels("a") and scope.needs_labels("b")
    assert not parse_scope({"namespaces": ["a"]}).needs_labels("b")


@pytest.mark.parametrize(
    "spec",
    [
        {"namespaces": "a"},
        {"namespaces": [""]},
        {"namespaceSelector": []},
        {"namespaceSelector": {"matchExpressions": [{"key": "k", "operator": "Gt"}]}},
        {"namespaceSelector": {"matchExpressions": [{"key": "k", "operator": "In"}]}},
    ],
)
def test_a_malformed_scope_is_an_error_naming_the_field(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"spec\.namespace"):
        parse_scope(spec)

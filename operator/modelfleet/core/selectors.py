"""Kubernetes label selectors: ``matchLabels`` plus ``matchExpressions`` (In, NotIn, Exists,
DoesNotExist), with the API server's semantics.

An empty selector (no labels, no expressions) matches everything, as in Kubernetes. A selector
is a frozen value, so it can be shared by every gateway lookup of one decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Operator(StrEnum):
    """A ``matchExpressions`` operator."""

    IN = "In"
    """The label is present and its value is one of ``values``."""
    NOT_IN = "NotIn"
    """The label is absent, or its value is none of ``values``."""
    EXISTS = "Exists"
    """The label is present, whatever its value."""
    DOES_NOT_EXIST = "DoesNotExist"
    """The label is absent."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``matchExpressions`` entry."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement."""
        if self.operator is Operator.IN:
            return self.key in labels and labels[self.key] in self.values
        if self.operator is Operator.NOT_IN:
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator is Operator.EXISTS:
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """``matchLabels`` (all must be equal) AND every ``matchExpressions`` requirement."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = field(default=())

    @classmethod
    def of(
        cls, match_labels: Mapping[str, str] | None = None, *requirements: Requirement
    ) -> LabelSelector:
        """Build a selector from a plain mapping (sorted, so equal selectors compare equal)."""
        return cls(tuple(sorted((match_labels or {}).items())), tuple(requirements))

    @property
    def is_empty(self) -> bool:
        """An empty selector matches every object."""
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with ``labels`` is selected."""
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions)

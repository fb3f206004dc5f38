"""Which namespaces may name a TrustPolicy: :class:`NamespaceScope` (``spec.namespaces`` and
``spec.namespaceSelector``), its rule and its one-line description for a Rejected reason.

A namespace is in scope when it is listed in ``namespaces`` or its labels match
``namespaceSelector``. With neither field every namespace is (the default, as before scopes
existed); an empty ``namespaces`` list with no selector names no namespace (fail closed); an
empty selector ``{}`` matches every namespace, as label selectors do in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet.core.selectors import LabelSelector, Operator, Requirement


@dataclass(frozen=True, slots=True)
class NamespaceScope:
    """A TrustPolicy's scope; ``None`` fields are absent from the policy."""

    namespaces: frozenset[str] | None = None
    selector: LabelSelector | None = None

    @property
    def unrestricted(self) -> bool:
        return self.namespaces is None and self.selector is None

    def needs_labels(self, namespace: str) -> bool:
        """Whether deciding for ``namespace`` needs its labels."""
        return self.selector is not None and namespace not in (self.namespaces or ())

    def allows(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """Whether releases in ``namespace`` (with ``labels``) may name the policy."""
        if self.unrestricted:
            return True
        if self.namespaces is not None and namespace in self.namespaces:
            return True
        return self.selector is not None and self.selector.matches(labels)

    def describe(self) -> str:
        """``namespaces [a, b] or namespaceSelector env=prod,tier in (x)``."""
        parts = []
        if self.namespaces is not None:
            parts.append(f"namespaces [{', '.join(sorted(self.namespaces))}]")
        if self.selector is not None:
            parts.append(f"namespaceSelector {describe_selector(self.selector) or '{}'}")
        return " or ".join(parts) or "every namespace"


def describe_selector(selector: LabelSelector) -> str:
    """A selector in ``kubectl -l`` syntax."""
    words = [f"{k}={v}" for k, v in selector.match_labels]
    for req in selector.match_expressions:
        values = ",".join(sorted(req.values))
        words.append(
            {
                Operator.IN: f"{req.key} in ({values})",
                Operator.NOT_IN: f"{req.key} notin ({values})",
                Operator.EXISTS: req.key,
                Operator.DOES_NOT_EXIST: f"!{req.key}",
            }[req.operator]
        )
    return ",".join(words)


def parse_scope(spec: Mapping[str, Any]) -> NamespaceScope:
    """The scope of a TrustPolicy ``spec`` (a plain mapping); ValueError naming the field."""
    namespaces: frozenset[str] | None = None
    if spec.get("namespaces") is not None:
        raw = spec["namespaces"]
        if not isinstance(raw, list) or not all(isinstance(n, str) and n for n in raw):
            raise ValueError("spec.namespaces must be a list of namespace names")
        namespaces = frozenset(raw)
    selector: LabelSelector | None = None
    if spec.get("namespaceSelector") is not None:
        selector = _selector(spec["namespaceSelector"], "spec.namespaceSelector")
    return NamespaceScope(namespaces, selector)


def _selector(raw: Any, where: str) -> LabelSelector:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a label selector object")
    labels = raw.get("matchLabels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ValueError(f"{where}.matchLabels must map label names to strings")
    requirements = []
    expressions = raw.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise ValueError(f"{where}.matchExpressions must be a list")
    for i, expr in enumerate(expressions):
        at = f"{where}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping) or not isinstance(expr.get("key"), str):
            raise ValueError(f"{at} needs a key")
        try:
            operator = Operator(str(expr.get("operator")))
        except ValueError:
            raise ValueError(f"{at}.operator must be In, NotIn, Exists or DoesNotExist") from None
        values = expr.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{at}.values must be a list of strings")
        if (operator in (Operator.IN, Operator.NOT_IN)) != bool(values):
            raise ValueError(f"{at}: In and NotIn need values; Exists and DoesNotExist take none")
        requirements.append(Requirement(expr["key"], operator, frozenset(values)))
    return LabelSelector.of(dict(labels), *requirements)

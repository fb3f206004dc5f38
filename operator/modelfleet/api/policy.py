"""What the operator reads from a TrustPolicy besides verification: revocations and the checklist.

The operator indexes every TrustPolicy as a :class:`PolicyView`: its ``spec.deniedDigests``
(which ``decide`` turns into ``status.stable.revoked``) and its ``spec.releaseChecklist``
(the release checklist items the policy requires before a release goes live; ``None`` when the
policy does not say, so the operator's cluster-wide default applies). Verification itself reads
the policy through :mod:`modelfleet.trust`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet.api.fields import TRUSTPOLICY_FIELDS
from modelfleet.core.checklist import ORDER, ChecklistItem
from modelfleet.core.doc import Node
from modelfleet.errors import ConfigError


@dataclass(frozen=True, slots=True)
class PolicyView:
    """One TrustPolicy as the operator's index holds it."""

    denied: frozenset[str] = frozenset()
    checklist: frozenset[ChecklistItem] | None = None


def denied_digests(body: Mapping[str, Any]) -> frozenset[str]:
    """A TrustPolicy's ``spec.deniedDigests`` (entries that are not strings match nothing)."""
    spec = body.get("spec") or {}
    raw = spec.get("deniedDigests") if isinstance(spec, Mapping) else None
    return frozenset(d for d in raw or () if isinstance(d, str))


def release_checklist(body: Mapping[str, Any]) -> frozenset[ChecklistItem] | None:
    """A TrustPolicy's ``spec.releaseChecklist.required`` (``None``: the policy does not say).

    An item name modelfleet does not know is a :class:`~modelfleet.errors.ConfigError` naming
    the field: a typo must never silently drop a requirement."""
    name = (body.get("metadata") or {}).get("name")
    root = Node(body, registry=TRUSTPOLICY_FIELDS, where=f"TrustPolicy {name}")
    spec = root.node("spec")
    checklist = None if spec is None else spec.node("releaseChecklist")
    if checklist is None:
        return None
    field = f"TrustPolicy {name}: spec.releaseChecklist.required"
    return parse_checklist_items(checklist.strings("required"), field=field)


def policy_view(body: Mapping[str, Any]) -> PolicyView:
    """The operator's view of a TrustPolicy (raises ConfigError for an unreadable checklist)."""
    return PolicyView(denied_digests(body), release_checklist(body))


def parse_checklist_items(names: Iterable[str], *, field: str) -> frozenset[ChecklistItem]:
    """Item names (``["Signed", "Owner"]``; blanks ignored) as items; an unknown name is an
    error naming ``field``. Also reads the operator's ``--release-checklist Signed,Owner``."""
    items: set[ChecklistItem] = set()
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        try:
            items.add(ChecklistItem(name))
        except ValueError:
            known = ", ".join(i.value for i in ORDER)
            raise ConfigError(
                f"{field}: {name!r} is not a release checklist item (known: {known})"
            ) from None
    return frozenset(items)

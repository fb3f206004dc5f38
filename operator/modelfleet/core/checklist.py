"""The secure release checklist: what must hold before a verified version goes live.

"Going live" is the first moment a gateway is told a new ``target`` (the Verifying → Progressing
edge). Which items are required is policy: the release's TrustPolicy
(``spec.releaseChecklist.required``) or, when the policy does not say, the operator's cluster-wide
default (``--release-checklist``); nothing is required unless one of them says so. While a
required item is unmet the release is ``Blocked``: every gateway stays on ``stable`` and
``status.checklist.unmet`` names each unmet item with the reason. The operator evaluates the
checklist again on every decision, so a release leaves ``Blocked`` by itself once the item is
met (an owner recorded, the first cohort reporting again, a stable restored). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from modelfleet.core.gateway import Gateway
from modelfleet.core.versions import VersionSnapshot

if TYPE_CHECKING:  # types.py holds ChecklistStatus in ReleaseStatus: no import cycle at run time
    from modelfleet.core.types import Release


class ChecklistItem(StrEnum):
    """One item of the release checklist (``releaseChecklist.required[]`` of a TrustPolicy)."""

    SIGNED = "Signed"
    """The artifact's signature verified against the TrustPolicy (``status.target.verification``
    says ``verified``, with the authority that signed it)."""
    PROVENANCE = "Provenance"
    """A provenance attestation was present and matched the TrustPolicy's ``attestations[]``
    checks (builder, source repository, ref): ``verification.provenance`` is recorded."""
    ROLLBACK_TARGET = "RollbackTarget"
    """There is a version to go back to: ``status.stable`` is present, was verified, and the
    TrustPolicy does not revoke it now."""
    TELEMETRY = "Telemetry"
    """The first cohort can be watched: at least ``gates.minReportingRatio`` of the gateways in
    the first step (and at least one) reported (health or heartbeat) within the operator's
    report age, so the gates will have evidence rather than silence."""
    OWNER = "Owner"
    """Someone answers for the release: ``spec.owner`` (a name and an incident contact) is
    recorded on the ModelRelease."""


#: The items in the order they are reported.
ORDER: tuple[ChecklistItem, ...] = tuple(ChecklistItem)


@dataclass(frozen=True, slots=True)
class Unmet:
    """A required item that does not hold, and why (``status.checklist.unmet[]``)."""

    item: ChecklistItem
    reason: str


@dataclass(frozen=True, slots=True)
class ChecklistStatus:
    """The checklist as evaluated for the current ``target`` (``status.checklist``)."""

    required: tuple[ChecklistItem, ...] = ()
    unmet: tuple[Unmet, ...] = ()


@dataclass(frozen=True, slots=True)
class Coverage:
    """How many gateways of the first cohort there are and how many reported recently."""

    assigned: int = 0
    reporting: int = 0


def recently_seen(gateway: Gateway, model: str, since: datetime) -> bool:
    """Whether ``gateway`` reported after ``since``: a heartbeat, or a health window for
    ``model`` (whatever version it runs)."""
    if gateway.last_seen is not None and gateway.last_seen > since:
        return True
    return any(
        h.model == model and h.window_end is not None and h.window_end > since
        for h in gateway.health
    )


def evaluate(
    release: Release,
    required: frozenset[ChecklistItem],
    *,
    target: VersionSnapshot,
    stable_revoked: bool,
    coverage: Coverage,
) -> tuple[Unmet, ...]:
    """The required items that do not hold for ``target`` going live, in :data:`ORDER`."""
    unmet: list[Unmet] = []
    for item in ORDER:
        if item in required:
            why = _check(item, release, target, stable_revoked, coverage)
            if why is not None:
                unmet.append(Unmet(item, why))
    return tuple(unmet)


# Complexity waiver: one return per checklist item, each naming why it is unmet.
def _check(  # noqa: PLR0911
    item: ChecklistItem,
    release: Release,
    target: VersionSnapshot,
    stable_revoked: bool,
    coverage: Coverage,
) -> str | None:
    v = target.verification
    if item is ChecklistItem.SIGNED:
        if v is None or not v.verified:
            return f"{target.version} has no verified signature"
        return None
    if item is ChecklistItem.PROVENANCE:
        if v is None or v.provenance is None:
            return (
                f"{target.version} was verified without a provenance attestation "
                "(spec.artifact.attestations, checked by the TrustPolicy's attestations[])"
            )
        return None
    if item is ChecklistItem.ROLLBACK_TARGET:
        return _rollback_target(release.status.stable, stable_revoked)
    if item is ChecklistItem.TELEMETRY:
        return _telemetry(release, coverage)
    if release.spec.owner is None:
        return "no owner recorded (spec.owner.name and spec.owner.contact)"
    return None


def _rollback_target(stable: VersionSnapshot | None, revoked: bool) -> str | None:
    if stable is None:
        return "no stable version to roll back to (status.stable is empty)"
    if stable.verification is None or not stable.verification.verified:
        return f"stable {stable.version} has no recorded verification"
    if revoked:
        return f"stable {stable.version} ({stable.digest}) is revoked by the TrustPolicy"
    return None


def _telemetry(release: Release, coverage: Coverage) -> str | None:
    ratio = release.spec.gates.min_reporting_ratio
    first = release.spec.steps[0].name
    if coverage.assigned == 0:
        return f"the first step {first} selects no gateway"
    if coverage.reporting == 0 or coverage.reporting < ratio * coverage.assigned:
        return (
            f"{coverage.reporting}/{coverage.assigned} gateways of the first step {first} "
            f"reported recently (needs {ratio:.0%})"
        )
    return None


def describe(unmet: tuple[Unmet, ...]) -> str:
    """One line naming every unmet item: ``Owner (no owner recorded ...); Telemetry (...)``."""
    return "; ".join(f"{u.item.value} ({u.reason})" for u in unmet)

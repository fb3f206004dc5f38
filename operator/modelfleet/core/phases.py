"""The ModelRelease phase machine as data: the :class:`Phase` enum and its transition table.

``decide()`` only ever moves a release along an edge of :data:`TRANSITIONS`; the table is what
``docs/rollout.md`` shows and what the tests walk, edge by edge.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Where a ModelRelease is in its lifecycle (``status.phase``)."""

    PENDING = "Pending"
    """Observed, nothing decided yet (no status written). Every gateway keeps ``stable``."""

    VERIFYING = "Verifying"
    """The spec's artifact is being verified (digest, signature, signer, provenance, denylist).
    No gateway hears of it yet: every gateway is told ``stable``."""

    BLOCKED = "Blocked"
    """The ``target`` verified, but a required item of the release checklist is unmet
    (:mod:`modelfleet.core.checklist`; ``status.checklist.unmet`` names each one): it does not
    go live. Every gateway is told ``stable``. Checked again on every decision: once every item
    holds the rollout starts (Progressing); a spec change verifies again."""

    PROGRESSING = "Progressing"
    """The verified ``target`` is rolling out: the cohorts up to ``status.rollout.step`` are told
    ``target``, the rest ``stable``; gates are evaluated on the cohorts told ``target``."""

    PAUSED = "Paused"
    """The rollout holds its current step (``spec.paused``, or gates inconclusive). Cohorts keep
    what they were told; gates are still watched and a failure still aborts."""

    SUCCEEDED = "Succeeded"
    """The last step promoted (``stable`` is now the released version), or the spec went back to
    ``stable`` (reason ``Reverted``). Every gateway is told ``stable``."""

    REJECTED = "Rejected"
    """Verification refused the spec's artifact, or the spec names the ``stable`` version and the
    TrustPolicy revoked it (reason ``StableRevoked``). Every gateway keeps ``stable`` (a revoked
    one only where it already runs); a spec change or a ``retry`` action verifies again."""

    ABORTED = "Aborted"
    """The rollout stopped (gate failure, progress deadline, manual abort): every gateway is told
    ``stable`` again. A spec change or a ``retry`` action starts over."""


#: Allowed phase changes (staying in the same phase is always allowed and is not a transition).
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.PENDING: frozenset({Phase.VERIFYING}),
    Phase.VERIFYING: frozenset(
        {
            Phase.PROGRESSING,  # verified, and the release checklist holds
            Phase.BLOCKED,  # verified, but a required checklist item is unmet
            Phase.REJECTED,  # verification failed
            Phase.SUCCEEDED,  # spec went back to stable while verifying (Reverted)
            Phase.ABORTED,  # manual abort
        }
    ),
    Phase.BLOCKED: frozenset(
        {
            Phase.PROGRESSING,  # every required checklist item holds now
            Phase.VERIFYING,  # superseded by a new spec, or retry action
            Phase.SUCCEEDED,  # spec reverted to stable
            Phase.ABORTED,  # manual abort, target revoked
            Phase.REJECTED,  # spec reverted to a stable version the policy revoked
        }
    ),
    Phase.PROGRESSING: frozenset(
        {
            Phase.PAUSED,  # spec.paused, or gates inconclusive
            Phase.SUCCEEDED,  # last step promoted, or spec reverted to stable
            Phase.ABORTED,  # gate failure, progress deadline, manual abort, target revoked
            Phase.VERIFYING,  # superseded by a new spec
            Phase.REJECTED,  # spec reverted to a stable version the policy revoked
        }
    ),
    Phase.PAUSED: frozenset(
        {
            Phase.PROGRESSING,  # resumed (spec.paused cleared, gates conclusive, promote action)
            Phase.SUCCEEDED,  # spec reverted to stable, or promote action on the last step
            Phase.ABORTED,  # gate failure, progress deadline, manual abort, target revoked
            Phase.VERIFYING,  # superseded by a new spec
            Phase.REJECTED,  # spec reverted to a stable version the policy revoked
        }
    ),
    Phase.SUCCEEDED: frozenset(
        {
            Phase.VERIFYING,  # a new spec
            Phase.REJECTED,  # the spec names the stable version, and the policy revoked it
        }
    ),
    Phase.REJECTED: frozenset(
        {
            Phase.VERIFYING,  # spec changed, or retry action
            Phase.SUCCEEDED,  # spec reverted to stable
        }
    ),
    Phase.ABORTED: frozenset(
        {
            Phase.VERIFYING,  # spec changed, or retry action
            Phase.SUCCEEDED,  # spec reverted to stable
            Phase.REJECTED,  # spec reverted to a stable version the policy revoked
        }
    ),
}

#: Phases in which the cohorts up to ``status.rollout.step`` are told ``target``.
TARGET_PHASES: frozenset[Phase] = frozenset({Phase.PROGRESSING, Phase.PAUSED, Phase.SUCCEEDED})

#: Phases in which a rollout is under way (gates watched, timers running).
ROLLING_PHASES: frozenset[Phase] = frozenset({Phase.PROGRESSING, Phase.PAUSED})


def can_transition(source: Phase, dest: Phase) -> bool:
    """Whether ``source -> dest`` is allowed (staying put always is)."""
    return source == dest or dest in TRANSITIONS[source]

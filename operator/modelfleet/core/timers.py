"""The persisted clocks of a step: when it started, converged, held healthy, went silent.

All rollout timing reads and writes these ``status.rollout`` timestamps, never process memory,
so a restarted operator resumes every clock where it was and a bake is never shortened:

* ``stepStartedAt``: when the step was entered (or resumed after ``spec.paused``);
* ``convergedAt``: the first evaluation at this step that was not Wait;
* ``healthySince``: the start of the current unbroken run of Pass evaluations (cleared by any
  Wait or Inconclusive); the step promotes once ``now - healthySince >= bake``;
* ``inconclusiveSince``: the start of the current run of Inconclusive evaluations past the
  first-report grace.

**First reports.** A cohort that has just converged has not sent a health window yet: an
Inconclusive verdict within ``grace`` (two report intervals, see
:attr:`~modelfleet.core.gates.Tuning.first_report_grace`) of ``convergedAt`` is *waiting for
reports* (:func:`awaiting_first_reports`), not missing evidence: it neither holds the step nor
starts ``inconclusiveSince``. Evidence still missing after the grace is Inconclusive.

``progressDeadline`` bounds the time *without progress*: before the step first converges
(from ``stepStartedAt``) and while gates stay inconclusive (from ``inconclusiveSince``). Baking
healthy never counts against it, and neither does time paused by ``spec.paused`` nor the
(bounded) first-report grace.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from modelfleet.core.types import GateResult, RolloutStatus


def awaiting_first_reports(
    rollout: RolloutStatus, result: GateResult, grace: timedelta, now: datetime
) -> bool:
    """Whether an Inconclusive verdict only means the step converged too recently to have
    reported (within ``grace`` of ``convergedAt``; a step converging now has just started)."""
    if result is not GateResult.INCONCLUSIVE:
        return False
    return now - (rollout.converged_at or now) < grace


def first_reports_due(rollout: RolloutStatus, grace: timedelta, now: datetime) -> timedelta:
    """How long until the first-report grace of the converged step ends (``<= 0``: it has)."""
    return (rollout.converged_at or now) + grace - now


def track(
    rollout: RolloutStatus, result: GateResult, now: datetime, *, awaiting: bool = False
) -> RolloutStatus:
    """The step clocks after an evaluation with ``result`` at ``now`` (``awaiting``: the verdict
    is Inconclusive only for want of the first reports; see :func:`awaiting_first_reports`)."""
    if result is GateResult.WAIT:
        return replace(rollout, healthy_since=None, inconclusive_since=None)
    converged = rollout.converged_at or now
    if awaiting:
        return replace(rollout, converged_at=converged, healthy_since=None, inconclusive_since=None)
    if result is GateResult.INCONCLUSIVE:
        return replace(
            rollout,
            converged_at=converged,
            healthy_since=None,
            inconclusive_since=rollout.inconclusive_since or now,
        )
    return replace(
        rollout,
        converged_at=converged,
        healthy_since=rollout.healthy_since or now,
        inconclusive_since=None,
    )


def no_progress_since(
    rollout: RolloutStatus, result: GateResult, now: datetime, *, awaiting: bool = False
) -> datetime | None:
    """Since when the step has made no progress (``None``: it is progressing, baking or
    ``awaiting`` its first reports)."""
    if awaiting:
        return None
    if result is GateResult.WAIT and rollout.converged_at is None:
        return rollout.step_started_at or now
    if result is GateResult.INCONCLUSIVE:
        return rollout.inconclusive_since or now
    return None


def bake_left(rollout: RolloutStatus, bake: timedelta, now: datetime) -> timedelta | None:
    """How much of the bake remains (``<= 0``: done; ``None``: gates are not holding)."""
    if rollout.healthy_since is None:
        return None
    return rollout.healthy_since + bake - now


def step_reset(rollout: RolloutStatus, step: int, name: str, now: datetime) -> RolloutStatus:
    """The clocks of a freshly entered step."""
    return replace(
        rollout,
        step=step,
        step_name=name,
        step_started_at=now,
        converged_at=None,
        healthy_since=None,
        inconclusive_since=None,
    )

"""The persisted clocks of a step: when it started, converged, held healthy, went silent.

All rollout timing reads and writes these ``status.rollout`` timestamps, never process memory,
so a restarted operator resumes every clock where it was and a bake is never shortened:

* ``stepStartedAt``: when the step was entered (or resumed after ``spec.paused``);
* ``convergedAt``: the first evaluation at this step that was not Wait;
* ``healthySince``: the start of the current unbroken run of Pass evaluations (cleared by any
  Wait or Inconclusive); the step promotes once ``now - healthySince >= bake``;
* ``inconclusiveSince``: the start of the current run of Inconclusive evaluations.

``progressDeadline`` bounds the time *without progress*: before the step first converges
(from ``stepStartedAt``) and while gates stay inconclusive (from ``inconclusiveSince``). Baking
healthy never counts against it, and neither does time paused by ``spec.paused``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from modelfleet.core.types import GateResult, RolloutStatus


def track(rollout: RolloutStatus, result: GateResult, now: datetime) -> RolloutStatus:
    """The step clocks after an evaluation with ``result`` at ``now``."""
    if result is GateResult.WAIT:
        return replace(rollout, healthy_since=None, inconclusive_since=None)
    converged = rollout.converged_at or now
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


def no_progress_since(rollout: RolloutStatus, result: GateResult, now: datetime) -> datetime | None:
    """Since when the step has made no progress (``None``: it is progressing or baking)."""
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

"""The state of one ``decide()`` call and the moves every rule shares.

:class:`Deciding` holds the release, the fleet, ``now`` and the status being built; its helpers
change phase along :data:`~modelfleet.core.phases.TRANSITIONS` (with an Event), append history,
and record when a time-based rule wants to be looked at again. The rules themselves are in
:mod:`modelfleet.core.rolling` (Progressing, Paused), :mod:`modelfleet.core.verifying`
(Verifying, Blocked, the ends and reverts) and :mod:`modelfleet.core.decide` (dispatch and
conditions). Internal to ``core``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from modelfleet.core.actions import ignored, take
from modelfleet.core.decision import NORMAL, WARNING, Event, FleetView
from modelfleet.core.gates import Measurement, Tuning
from modelfleet.core.phases import Phase, can_transition
from modelfleet.core.types import ActionKind, HistoryEntry, Release, RolloutStatus
from modelfleet.core.versions import Verification, VersionSnapshot


class Deciding:
    """One decision in the making (see the module docstring)."""

    def __init__(
        self,
        release: Release,
        fleet: FleetView,
        now: datetime,
        verification: Verification | None,
        tuning: Tuning,
    ) -> None:
        self.release = release
        self.fleet = fleet
        self.now = now
        self.verification = verification
        self.tuning = tuning
        self.st = release.status
        self.spec = release.spec.snapshot()
        self.events: list[Event] = []
        self.requeue: timedelta | None = None
        self.m = Measurement()
        self.measured = False
        taken = take(release.action, self.st.rollout.last_action_id)
        self.action: ActionKind | None = taken.kind
        if taken.last_action_id != self.st.rollout.last_action_id:
            self._rollout(last_action_id=taken.last_action_id)
        if taken.event is not None:
            self.events.append(taken.event)

    def _rollout(self, **changes: Any) -> None:
        self.st = replace(self.st, rollout=replace(self.st.rollout, **changes))

    def _event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def _move(self, phase: Phase, reason: str, message: str, *, warning: bool = False) -> None:
        """Change phase (an edge of the transition table) and record why, with an event."""
        source = self.st.phase
        if not can_transition(source, phase):
            raise AssertionError(f"illegal phase change {source} -> {phase} ({reason})")
        self.st = replace(self.st, phase=phase, reason=reason, message=message)
        if source != phase or self.release.status.reason != reason:
            self._event(WARNING if warning else NORMAL, reason, f"{source} -> {phase}: {message}")

    def _history(self, snap: VersionSnapshot, outcome: str, reason: str) -> None:
        entry = HistoryEntry(
            version=snap.version,
            digest=snap.digest,
            outcome=outcome,
            revision=self.st.source.revision if self.st.source else None,
            started_at=snap.since,
            finished_at=self.now,
            reason=reason,
            model_digest=snap.verification.model_digest if snap.verification else None,
        )
        kept = (*self.st.history, entry)[-self.tuning.history_limit :]
        self.st = replace(self.st, history=kept)

    def _ignore(self, why: str | None = None) -> None:
        if self.action is not None:
            self.events.append(ignored(self.action, self.st.phase, why))
            self.action = None

    def _step_name(self, step: int) -> str:
        return self.release.spec.steps[step].name

    def _version(self, snap: VersionSnapshot | None) -> str:
        return "nothing" if snap is None else snap.version

    def _measure(self) -> None:
        self.m = self.fleet.measure(self._current(), self.now, self.tuning)
        self.measured = True

    def _current(self) -> Release:
        return replace(self.release, status=self.st)

    def _revoked(self, snap: VersionSnapshot) -> bool:
        """Whether the release's TrustPolicy denies ``snap`` now (persisted flag if unknown)."""
        denied = self.fleet.revocations.get(self.release.spec.trust_policy)
        return snap.revoked if denied is None else snap.revoked_by(denied)

    def _note(self, reason: str, message: str) -> None:
        """Say what a Progressing step is doing (``status.reason``): no phase change, no Event."""
        self.st = replace(self.st, reason=reason, message=message)

    def _soonest(self, delay: timedelta) -> None:
        if self.requeue is None or delay < self.requeue:
            self.requeue = max(delay, timedelta(0))

    def _clear_target(self, verification: Verification | None) -> None:
        """Drop ``target`` and the rollout's progress for a new start (or a refusal)."""
        self.st = replace(
            self.st,
            target=None,
            verification=verification,
            source=self.release.source or self.st.source,
            checklist=None,
            rollout=RolloutStatus(last_action_id=self.st.rollout.last_action_id),
        )

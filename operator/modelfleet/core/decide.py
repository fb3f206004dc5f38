"""``decide()``: the whole ModelRelease state machine as one pure function.

Input: the release (spec, persisted status, pending action), the fleet (gateways and the other
releases of the namespace), ``now`` and, when the controller has just verified the spec's
artifact, the verification result. Output: a :class:`Decision` (the new status, the events to
emit, and when to look again; :mod:`modelfleet.api.status` turns it into the status write). No
side effects, no clock reads: every time-based rule reads timestamps from status, so a restarted
operator decides the same and a bake is never shortened. The rules, in order, are documented in
``docs/rollout.md``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from modelfleet.core.actions import ignored, take
from modelfleet.core.conditions import (
    CONFLICT,
    DEGRADED,
    TRUE,
    is_true,
    release_conditions,
    set_condition,
)
from modelfleet.core.decision import NORMAL, WARNING, Decision, Event, FleetView
from modelfleet.core.gates import DEFAULT_TUNING, Measurement, Tuning, explain, judge, measure
from modelfleet.core.phases import ROLLING_PHASES, Phase, can_transition
from modelfleet.core.timers import (
    awaiting_first_reports,
    bake_left,
    first_reports_due,
    no_progress_since,
    step_reset,
    track,
)
from modelfleet.core.times import format_duration
from modelfleet.core.types import (
    ActionKind,
    GateResult,
    GateStatus,
    HistoryEntry,
    Release,
    RollbackMode,
    RolloutStatus,
)
from modelfleet.core.versions import Verification, VersionSnapshot

__all__ = ["NORMAL", "WARNING", "Decision", "Event", "FleetView", "decide"]

#: ``status.reason`` while a freshly converged step waits for its first health reports.
WAITING_FOR_REPORTS = "WaitingForReports"


def decide(
    release: Release,
    fleet: FleetView,
    now: datetime,
    *,
    verification: Verification | None = None,
    tuning: Tuning = DEFAULT_TUNING,
) -> Decision:
    """Decide the next status of ``release`` (see ``docs/rollout.md`` for the rules)."""
    return _Decider(release, fleet, now, verification, tuning).run()


class _Decider:
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

    # ------------------------------------------------------------------ helpers

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

    # ------------------------------------------------------------------ main

    def run(self) -> Decision:
        self._revocations()
        phase = self.st.phase
        stable = self.st.stable
        if stable is not None and self.spec.same_artifact(stable):
            if stable.revoked:
                self._refuse_revoked_stable(stable)
            else:
                self._settle_on_stable()
        elif phase in (Phase.PENDING, Phase.SUCCEEDED):
            self._start_verifying("NewVersion", f"spec asks for {self.spec.version}")
        elif phase is Phase.VERIFYING:
            self._verifying()
        elif phase in ROLLING_PHASES:
            if self.st.target is not None and self._revoked(self.st.target):
                self._abort(
                    "TargetRevoked",
                    f"{self.st.target.version} ({self.st.target.digest}) is revoked by "
                    f"TrustPolicy {self.release.spec.trust_policy!r}",
                )
            elif self.spec.same_artifact(self.st.target):
                self._rolling()
            else:
                self._start_verifying(
                    "Superseded",
                    f"spec changed to {self.spec.version} during the rollout of "
                    f"{self._version(self.st.target)}",
                )
        elif phase is Phase.ABORTED:
            if self.st.target is not None:
                self._after_end(self.spec.same_artifact(self.st.target))
            else:  # aborted before verification finished
                self._after_end(self.st.observed_generation == self.release.generation)
        elif phase is Phase.REJECTED:
            v = self.st.verification
            self._after_end(
                v is not None
                and v.generation == self.release.generation
                and v.digest == self.spec.digest
            )
        self._ignore()
        if not self.measured:
            self._measure()
        return self._finish()

    def _measure(self) -> None:
        self.m = measure(
            self._current(), self.fleet.gateways, self.fleet.releases, self.now, self.tuning
        )
        self.measured = True

    def _current(self) -> Release:
        return replace(self.release, status=self.st)

    # ------------------------------------------------------------------ revocation

    def _revoked(self, snap: VersionSnapshot) -> bool:
        """Whether the release's TrustPolicy denies ``snap`` now (persisted flag if unknown)."""
        denied = self.fleet.revocations.get(self.release.spec.trust_policy)
        return snap.revoked if denied is None else snap.revoked_by(denied)

    def _revocations(self) -> None:
        """Keep ``stable.revoked`` in step with the TrustPolicy; a change is an Event."""
        stable = self.st.stable
        if stable is None or self._revoked(stable) == stable.revoked:
            return
        revoked = not stable.revoked
        self.st = replace(self.st, stable=replace(stable, revoked=revoked))
        policy = self.release.spec.trust_policy
        if revoked:
            self._event(
                WARNING,
                "StableRevoked",
                f"stable {stable.version} ({stable.digest}) is revoked by TrustPolicy "
                f"{policy!r}: it is told to no gateway; those that run it keep it, no other "
                "installs it",
            )
        else:
            self._event(
                NORMAL,
                "StableReinstated",
                f"TrustPolicy {policy!r} no longer revokes stable {stable.version}",
            )

    def _refuse_revoked_stable(self, stable: VersionSnapshot) -> None:
        """The spec names ``stable`` and the policy revoked it: Rejected, never "Reverted"."""
        reason = (
            f"denylist: {stable.version} ({stable.digest}) is revoked by TrustPolicy "
            f"{self.release.spec.trust_policy!r}"
        )
        v = self.st.verification
        if (
            self.st.phase is Phase.REJECTED
            and v is not None
            and (v.verified, v.digest, v.generation)
            == (False, self.spec.digest, self.release.generation)
        ):
            return  # refused already
        if self.st.phase in ROLLING_PHASES and self.st.target is not None:
            self._history(self.st.target, "Superseded", "spec returned to the revoked stable")
        self._history(self.spec, "Rejected", reason)
        refused = Verification(
            verified=False,
            digest=self.spec.digest,
            reason=reason,
            at=self.now,
            generation=self.release.generation,
        )
        self.st = replace(
            self.st,
            target=None,
            verification=refused,
            source=self.release.source or self.st.source,
            rollout=RolloutStatus(last_action_id=self.st.rollout.last_action_id),
        )
        self._move(
            Phase.REJECTED,
            "StableRevoked",
            f"{self.spec.version} refused: {reason}",
            warning=True,
        )

    # ------------------------------------------------------------------ phases

    def _settle_on_stable(self) -> None:
        """The spec names ``stable``: nothing to roll out; any canary ends at once."""
        phase = self.st.phase
        if phase is Phase.SUCCEEDED or phase is Phase.PENDING:
            if self.st.target is not None:
                self.st = replace(self.st, target=None)
            return
        if phase in ROLLING_PHASES and self.st.target is not None:
            self._history(self.st.target, "Reverted", "spec returned to the stable version")
        # status.verification describes the version in force, not the rollout or refusal that
        # the revert ended.
        stable = self.st.stable
        self.st = replace(
            self.st, target=None, verification=None if stable is None else stable.verification
        )
        self._rollout(
            step=len(self.release.spec.steps) - 1,
            step_name=self._step_name(-1),
            converged_at=None,
            healthy_since=None,
            inconclusive_since=None,
        )
        self._move(
            Phase.SUCCEEDED,
            "Reverted",
            f"spec names the stable version {self.spec.version}: every gateway runs it",
        )

    def _start_verifying(self, reason: str, message: str) -> None:
        if self.st.phase in ROLLING_PHASES and self.st.target is not None:
            self._history(self.st.target, "Superseded", message)
        self.st = replace(
            self.st,
            target=None,
            verification=None,
            source=self.release.source or self.st.source,
            rollout=RolloutStatus(last_action_id=self.st.rollout.last_action_id),
        )
        if self.st.phase is not Phase.VERIFYING:
            self._move(Phase.VERIFYING, reason, message)
        self._verifying()

    def _after_end(self, unchanged: bool) -> None:
        """Aborted or Rejected: stay, unless the spec changed or a retry was asked for."""
        if not unchanged:
            self._start_verifying("NewVersion", f"spec asks for {self.spec.version}")
        elif self.action is ActionKind.RETRY:
            self.action = None
            self._start_verifying("RetryRequested", f"retrying {self.spec.version}")

    def _verifying(self) -> None:
        if self.release.source is not None:
            self.st = replace(self.st, source=self.release.source)
        if self.action is ActionKind.ABORT:
            self.action = None
            self._history(self.spec, "Aborted", "ManualAbort")
            self._move(
                Phase.ABORTED,
                "ManualAbort",
                "aborted before verification finished",
                warning=True,
            )
            return
        v = self.verification
        if v is None or v.digest != self.spec.digest:
            return
        v = replace(v, generation=self.release.generation, at=v.at or self.now)
        self.verification = None
        self.st = replace(self.st, verification=v)
        if not v.verified:
            self._history(self.spec, "Rejected", v.reason or "verification failed")
            self._move(
                Phase.REJECTED,
                "VerificationFailed",
                f"{self.spec.version} refused: {v.reason or 'verification failed'}",
                warning=True,
            )
            return
        target = replace(self.spec, since=self.now, verification=v)
        last = len(self.release.spec.steps) - 1
        rollback = (
            self.release.spec.rollback is RollbackMode.IMMEDIATE
            and self.st.stable is not None
            and any(
                h.outcome == "Succeeded"
                and (h.version, h.digest) == (target.version, target.digest)
                for h in self.st.history
            )
        )
        step = last if rollback else 0
        rollout = step_reset(self.st.rollout, step, self._step_name(step), self.now)
        self.st = replace(self.st, target=target, rollout=replace(rollout, cohorts=(), gates=None))
        if rollback:
            self._move(
                Phase.PROGRESSING,
                "ImmediateRollback",
                f"{target.version} was stable before and verified again: every gateway at once",
            )
        else:
            self._move(
                Phase.PROGRESSING,
                "Verified",
                f"{target.version} verified ({v.authority or 'trusted signer'}): "
                f"starting step {self._step_name(0)}",
            )
        self._rolling()

    def _rolling(self) -> None:
        spec = self.release.spec
        last = len(spec.steps) - 1
        if self.st.rollout.step > last:  # steps were removed from the spec mid-rollout
            self._rollout(step=last, step_name=self._step_name(last))
        if self.action is ActionKind.ABORT:
            self.action = None
            self._abort("ManualAbort", "aborted by the modelfleet.dev/action annotation")
            return
        self._measure()
        if self.m.conflicted:
            self._rollout(healthy_since=None)
            self._ignore("the release is in conflict")
            return
        if self.action is ActionKind.PROMOTE:
            self.action = None
            self._promote("ManualPromote", "promoted by the modelfleet.dev/action annotation")
            return
        if self.st.reason == "PausedBySpec" and not spec.paused:
            # Resuming: the deadline clock restarts; the time spent paused is no lack of progress.
            self._rollout(step_started_at=self.now, inconclusive_since=None)
        verdict = judge(spec.gates, self.m, self.now, self.fleet.queries)
        why = explain(spec.gates, verdict, self.m, self.fleet.queries)
        self._record_gates(verdict)
        if verdict.result is GateResult.FAIL:
            self._abort(verdict.reason, why)
            return
        r = self.st.rollout
        grace = self.tuning.first_report_grace
        awaiting = awaiting_first_reports(r, verdict.result, grace, self.now)
        deadline = spec.gates.progress_deadline
        since = no_progress_since(r, verdict.result, self.now, awaiting=awaiting)
        if deadline is not None and since is not None and not spec.paused:
            if self.now - since > deadline:
                self._abort(
                    "ProgressDeadlineExceeded",
                    f"step {r.step_name} made no progress for {format_duration(deadline)} ({why})",
                )
                return
            self._soonest(since + deadline - self.now + timedelta(milliseconds=1))
        self.st = replace(self.st, rollout=track(r, verdict.result, self.now, awaiting=awaiting))
        if awaiting:
            self._soonest(first_reports_due(self.st.rollout, grace, self.now))
        self._pause_or_resume(verdict, why, awaiting=awaiting)
        r = self.st.rollout
        bake = spec.steps[r.step].bake
        left = bake_left(r, bake, self.now)
        if verdict.result is GateResult.PASS and left is not None:
            if self.st.phase is Phase.PROGRESSING and left <= timedelta(0):
                self._promote(
                    "BakeCompleted", f"gates held for {format_duration(bake)} after convergence"
                )
            elif self.st.phase is Phase.PROGRESSING:
                self._soonest(left)

    def _soonest(self, delay: timedelta) -> None:
        if self.requeue is None or delay < self.requeue:
            self.requeue = max(delay, timedelta(0))

    def _record_gates(self, verdict: GateStatus) -> None:
        old = self.st.rollout.gates
        if old is not None and replace(old, evaluated_at=None) == replace(
            verdict, evaluated_at=None
        ):
            verdict = old
        self._rollout(gates=verdict, cohorts=self.m.cohorts)

    def _pause_or_resume(self, verdict: GateStatus, why: str, *, awaiting: bool) -> None:
        phase, reason = self.st.phase, self.st.reason
        if self.release.spec.paused:
            if not (phase is Phase.PAUSED and reason == "PausedBySpec"):
                self._move(Phase.PAUSED, "PausedBySpec", "spec.paused is true: holding the step")
        elif awaiting:
            if phase is Phase.PROGRESSING:
                self._note(
                    WAITING_FOR_REPORTS,
                    f"step {self.st.rollout.step_name} converged; waiting up to "
                    f"{format_duration(self.tuning.first_report_grace)} for its first health "
                    "reports",
                )
        elif verdict.result is GateResult.INCONCLUSIVE:
            if not (phase is Phase.PAUSED and reason == "Inconclusive"):
                self._move(Phase.PAUSED, "Inconclusive", f"{verdict.reason}: {why}")
        elif phase is Phase.PAUSED:
            if reason == "PausedBySpec":
                self._move(Phase.PROGRESSING, "Resumed", "spec.paused is false again")
            else:
                self._move(Phase.PROGRESSING, "GatesConclusive", f"{verdict.reason}: {why}")
        elif reason == WAITING_FOR_REPORTS and verdict.result is GateResult.PASS:
            self._note(
                "ReportsReceived",
                f"step {self.st.rollout.step_name}: health reports arrived; gates are judged",
            )

    def _note(self, reason: str, message: str) -> None:
        """Say what a Progressing step is doing (``status.reason``): no phase change, no Event."""
        self.st = replace(self.st, reason=reason, message=message)

    def _promote(self, reason: str, message: str) -> None:
        r = self.st.rollout
        last = len(self.release.spec.steps) - 1
        if r.step >= last:
            self._succeed(reason, message)
            return
        step = r.step + 1
        self.st = replace(self.st, rollout=step_reset(r, step, self._step_name(step), self.now))
        text = f"step {r.step_name} -> {self._step_name(step)}: {message}"
        self._event(NORMAL, reason, text)
        if self.st.phase is Phase.PAUSED and not self.release.spec.paused:
            self._move(Phase.PROGRESSING, reason, message)
        elif self.st.phase is Phase.PROGRESSING:
            self._note(reason, text)
        self.requeue = None

    def _succeed(self, reason: str, message: str) -> None:
        target = self.st.target
        assert target is not None
        self._history(target, "Succeeded", reason)
        self.st = replace(self.st, stable=replace(target, since=self.now), target=None)
        self._rollout(converged_at=None, healthy_since=None, inconclusive_since=None)
        self._move(Phase.SUCCEEDED, reason, f"{target.version} is stable: {message}")
        self.requeue = None

    def _abort(self, reason: str, message: str) -> None:
        target = self.st.target
        if target is not None:
            self._history(target, "Aborted", reason)
        self._rollout(healthy_since=None, inconclusive_since=None)
        back = self._version(self.st.stable)
        self._move(
            Phase.ABORTED, reason, f"{message}; every gateway goes back to {back}", warning=True
        )
        self.requeue = None

    # ------------------------------------------------------------------ conditions

    def _finish(self) -> Decision:
        st = self.st
        gen = self.release.generation
        conflict = None
        if self.m.conflicted:
            conflict = (
                f"{self.m.conflicted} gateways are also covered by "
                f"{', '.join(self.m.conflicts_with)} for model {self.release.spec.model}; "
                "their assignment is frozen until the selectors no longer overlap"
            )
            if not is_true(st.conditions, CONFLICT):
                self._event(WARNING, "Conflict", conflict)
        conds = release_conditions(
            st.conditions,
            phase=st.phase,
            reason=st.reason or st.phase.value,
            message=st.message or "",
            has_target=st.target is not None,
            conflict=conflict,
            generation=gen,
            now=self.now,
        )
        if st.stable is not None and st.stable.revoked and st.reason != "StableRevoked":
            conds = set_condition(
                conds,
                DEGRADED,
                TRUE,
                reason="StableRevoked",
                message=f"stable {st.stable.version} is revoked by TrustPolicy "
                f"{self.release.spec.trust_policy!r}; gateways get no instruction for the model "
                "(those that run it keep it) until a new version succeeds",
                generation=gen,
                now=self.now,
            )
        st = replace(st, conditions=conds, observed_generation=gen)
        return Decision(
            status=st,
            previous=self.release.status,
            events=tuple(self.events),
            requeue_after=self.requeue,
            needs_verification=st.phase is Phase.VERIFYING,
            measurement=self.m,
        )

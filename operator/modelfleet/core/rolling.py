"""The rules of a rollout under way (Progressing, Paused): gates, bake, promote, abort.

Each call judges the current step on the cohorts told ``target`` (:mod:`modelfleet.core.gates`),
holds it while evidence is missing, promotes it once it converged and the gates held for the
whole bake, and aborts on a gate failure or when the progress deadline passed. Every timing rule
reads the timestamps in ``status.rollout`` (:mod:`modelfleet.core.timers`). Internal to ``core``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from modelfleet.core.deciding import Deciding
from modelfleet.core.decision import NORMAL
from modelfleet.core.gates import explain, judge
from modelfleet.core.phases import Phase
from modelfleet.core.timers import (
    awaiting_first_reports,
    bake_left,
    first_reports_due,
    no_progress_since,
    step_reset,
    track,
)
from modelfleet.core.times import format_duration
from modelfleet.core.types import ActionKind, GateResult, GateStatus

#: ``status.reason`` while a freshly converged step waits for its first health reports.
WAITING_FOR_REPORTS = "WaitingForReports"


class RollingRules(Deciding):
    """Progressing and Paused (see the module docstring)."""

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

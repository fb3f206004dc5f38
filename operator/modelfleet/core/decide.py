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
from datetime import datetime

from modelfleet.core.conditions import (
    CONFLICT,
    DEGRADED,
    TRUE,
    is_true,
    release_conditions,
    set_condition,
)
from modelfleet.core.decision import NORMAL, WARNING, Decision, Event, FleetView
from modelfleet.core.gates import DEFAULT_TUNING, Tuning
from modelfleet.core.phases import ROLLING_PHASES, Phase
from modelfleet.core.types import Release
from modelfleet.core.verifying import VerifyingRules
from modelfleet.core.versions import Verification

__all__ = ["NORMAL", "WARNING", "Decision", "Event", "FleetView", "decide"]


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


class _Decider(VerifyingRules):
    """Dispatches on the phase (``run``) and derives the conditions (``_finish``)."""

    # Complexity waiver: the dispatch on the phase table: one branch per phase.
    def run(self) -> Decision:  # noqa: PLR0912
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
        elif phase in ROLLING_PHASES or phase is Phase.BLOCKED:
            if self.st.target is not None and self._revoked(self.st.target):
                self._abort(
                    "TargetRevoked",
                    f"{self.st.target.version} ({self.st.target.digest}) is revoked by "
                    f"TrustPolicy {self.release.spec.trust_policy!r}",
                )
            elif self.spec.same_artifact(self.st.target):
                self._rolling() if phase in ROLLING_PHASES else self._blocked()
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

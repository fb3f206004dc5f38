"""The rules around a rollout: verification, the go-live checklist, reverts, ends, revocation.

A new spec is verified (Verifying), checked against the release checklist before any gateway
hears of it (Blocked while a required item is unmet, :mod:`modelfleet.core.checklist`), and only
then rolled out (:mod:`modelfleet.core.rolling`). A spec naming ``stable`` ends any rollout at
once; Rejected and Aborted wait for a new spec or a ``retry``; the TrustPolicy's revocations are
kept in ``status.stable.revoked``. Internal to ``core``.
"""

from __future__ import annotations

from dataclasses import replace

from modelfleet.core.checklist import ORDER, ChecklistStatus, describe, evaluate
from modelfleet.core.decision import NORMAL, WARNING
from modelfleet.core.phases import ROLLING_PHASES, Phase
from modelfleet.core.rolling import RollingRules
from modelfleet.core.timers import step_reset
from modelfleet.core.types import ActionKind, RollbackMode
from modelfleet.core.versions import Verification, VersionSnapshot


class VerifyingRules(RollingRules):
    """Verifying, Blocked, the ends and reverts (see the module docstring)."""

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
        self._clear_target(refused)
        self._move(
            Phase.REJECTED,
            "StableRevoked",
            f"{self.spec.version} refused: {reason}",
            warning=True,
        )

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
            self.st,
            target=None,
            checklist=None,
            verification=None if stable is None else stable.verification,
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
        self._clear_target(None)
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
        self.st = replace(self.st, target=replace(self.spec, since=self.now, verification=v))
        self._go_live()

    def _blocked(self) -> None:
        """Blocked on the release checklist: an abort or a retry acts; else check it again."""
        if self.action is ActionKind.ABORT:
            self.action = None
            self._abort("ManualAbort", "aborted by the modelfleet.dev/action annotation")
        elif self.action is ActionKind.RETRY:
            self.action = None
            self._start_verifying("RetryRequested", f"retrying {self.spec.version}")
        else:
            self._go_live()

    def _go_live(self) -> None:
        """The verified ``target`` goes live (Progressing) if the release checklist holds;
        otherwise the release is Blocked, naming each unmet item."""
        target = self.st.target
        assert target is not None
        if self._checklist_unmet(target):
            return
        v = target.verification
        authority = (v.authority if v is not None else None) or "trusted signer"
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
        self.st = replace(self.st, rollout=replace(rollout, cohorts=(), gates=None))
        checked = " (release checklist holds)" if self.st.checklist is not None else ""
        reason = "ChecklistMet" if self.st.phase is Phase.BLOCKED else None
        if rollback:
            self._move(
                Phase.PROGRESSING,
                reason or "ImmediateRollback",
                f"{target.version} was stable before and verified again{checked}: every "
                "gateway at once",
            )
        else:
            self._move(
                Phase.PROGRESSING,
                reason or "Verified",
                f"{target.version} verified ({authority}){checked}: starting step "
                f"{self._step_name(0)}",
            )
        self._rolling()

    def _checklist_unmet(self, target: VersionSnapshot) -> bool:
        """Evaluate the required release checklist into ``status.checklist``; True (and
        Blocked) when some item is unmet. Nothing required: no checklist is recorded."""
        spec = self.release.spec
        required = self.fleet.checklists.get(spec.trust_policy, self.fleet.default_checklist)
        if not required:
            self.st = replace(self.st, checklist=None)
            return False
        self._measure()
        stable = self.st.stable
        unmet = evaluate(
            self._current(),
            required,
            target=target,
            stable_revoked=stable is not None and stable.revoked,
            coverage=self.m.first_cohort,
        )
        items = tuple(i for i in ORDER if i in required)
        self.st = replace(self.st, checklist=ChecklistStatus(items, unmet))
        if not unmet:
            return False
        self._move(
            Phase.BLOCKED,
            "ChecklistUnmet",
            f"{target.version} is verified but does not go live; release checklist unmet: "
            f"{describe(unmet)}",
            warning=True,
        )
        return True

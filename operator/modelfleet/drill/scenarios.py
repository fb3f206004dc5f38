"""The drill catalogue: eight failure scenarios, each a small class saying how to inject the
fault, when the system has detected it, when the fleet has recovered, and what must hold.

Every lane starts from the stable version ``1.0.0`` on all of its gateways; ``2.0.0`` is the
version under test (bad, or merely new); ``3.0.0`` is a fix. The docstring of each class is its
entry in ``modelfleet drill --help`` and docs/operations.md.
"""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING

from modelfleet.demo.watch import GROUP, VERSION, FleetView
from modelfleet.drill.deployed import operator_pods
from modelfleet.drill.report import Check
from modelfleet.drill.scenario import (
    REGRESSION,
    ROLLING,
    V1,
    V2,
    V3,
    Scenario,
    back_on,
    on_spec,
    outcome_check,
    within_canaries,
)
from modelfleet.drill.timeline import DETECTED, FAULT, NOTE

if TYPE_CHECKING:
    from modelfleet.drill.fleet import DrillFleet
    from modelfleet.drill.runner import Run


class _Refused(Scenario):
    """Shared by the two scenarios the operator must refuse before any gateway hears of them."""

    def detected(self, run: Run, view: FleetView) -> str | None:
        r = view.release
        return f"Rejected: {r.reason}" if on_spec(view, V2, "Rejected") else None

    def recovered(self, run: Run, view: FleetView) -> str | None:
        return f"fleet still on {V1}" if view.all_on(V1) else None

    def checks(self, run: Run, view: FleetView) -> list[Check]:
        exposed = run.timeline.exposed
        return [
            outcome_check(f"{V2} rejected by verification", on_spec(view, V2, "Rejected"), view),
            Check(f"no gateway heard of {V2}", not exposed, f"{len(exposed)} exposed"),
            back_on(view, V1),
        ]


class InvalidSignature(_Refused):
    """Release 2.0.0 signed by a key the TrustPolicy does not trust. Expect: the operator
    rejects it while verifying; no gateway is ever told about it; the fleet stays on 1.0.0.
    Measures the time from the release to Rejected."""

    name, prefix = "invalid-signature", "is"
    summary = "a release signed by an untrusted key: rejected, 0 gateways exposed"

    def inject(self, run: Run) -> None:
        from modelfleet.demo.models import ModelShelf

        rogue = ModelShelf(run.fleet.models / "rogue", model=run.lane.name)  # another key
        run.release(rogue.build(V2), V2)
        run.mark(FAULT, f"release {V2} signed by an untrusted key")


class TamperedArtifact(_Refused):
    """Release 2.0.0 whose files were changed after signing (repacked, with the digest of the
    tampered archive in the spec and the original signature). Expect: signature verification
    fails, Rejected, no gateway exposed, the fleet stays on 1.0.0."""

    name, prefix = "tampered-artifact", "ta"
    summary = "a release whose files changed after signing: rejected, 0 gateways exposed"

    def inject(self, run: Run) -> None:
        from modelfleet.trust import pack_model

        signed = run.lane.shelf.build(V2)
        src = run.fleet.models / "tampered" / run.lane.name / "src"
        shutil.copytree(signed.artifact.parent / "src", src, dirs_exist_ok=True)
        doc = json.loads((src / "model.json").read_text())
        doc["bias"] = 42.0  # the tampering: a different model under the same signature
        (src / "model.json").write_text(json.dumps(doc, indent=2) + "\n")
        tar = src.parent / f"{run.lane.name}-{V2}-tampered.tar"
        digest = pack_model(src, tar)
        artifact = {"uri": run.fleet.uri(tar), "digest": digest,
                    "signature": {"uri": run.fleet.uri(signed.signature)}}  # fmt: skip
        run.release(artifact, V2)
        run.mark(FAULT, f"release {V2} with files changed after signing")


class CanaryRegression(Scenario):
    """Release 2.0.0 with an injected regression (30% errors). Expect: the canary ring runs
    it, the error-rate gate fails, the rollout aborts and the canaries return to 1.0.0; no
    gateway outside the ring ever gets 2.0.0. Measures time to detect (first canary running
    2.0.0 -> Aborted), time to roll back (Aborted -> every gateway on 1.0.0), exposure."""

    name, prefix = "canary-regression", "cr"
    summary = "a release with 30% errors: the canary gate aborts, canaries roll back"
    behaviour = REGRESSION

    def inject(self, run: Run) -> None:
        run.release(run.lane.shelf.build(V2), V2)
        run.mark(FAULT, f"release {V2} (regression: 30% errors)")

    def detected(self, run: Run, view: FleetView) -> str | None:
        r = view.release
        return f"Aborted: {r.gate_reason or r.reason}" if on_spec(view, V2, "Aborted") else None

    def recovered(self, run: Run, view: FleetView) -> str | None:
        return f"every gateway back on {V1}" if view.all_on(V1) and not view.on(V2) else None

    def checks(self, run: Run, view: FleetView) -> list[Check]:
        return [
            outcome_check("the rollout aborted", on_spec(view, V2, "Aborted"), view),
            within_canaries(run),
            back_on(view, V1),
        ]


class MissingStableArtifact(CanaryRegression):
    """The stable 1.0.0's artifact and signature vanish from the store, then 2.0.0 (30%
    errors) is released. Expect: the abort still returns the canaries to 1.0.0, from the copy
    each agent keeps in its other slot (nothing to download); exposure within the ring."""

    name, prefix = "missing-stable-artifact", "ms"
    summary = "the stable's artifact is gone when a regression aborts: canaries still roll back"

    def inject(self, run: Run) -> None:
        stable = run.lane.shelf.build(V1)
        stable.artifact.unlink()
        stable.signature.unlink()
        run.mark(NOTE, f"{V1} artifact and signature deleted from the store")
        run.release(run.lane.shelf.build(V2), V2)
        run.mark(FAULT, f"release {V2} (regression) with no {V1} artifact left to fetch")

    def checks(self, run: Run, view: FleetView) -> list[Check]:
        gone = not run.lane.shelf.build(V1).artifact.exists()
        return [
            *super().checks(run, view),
            Check(f"{V1} came from the gateways' own slots", gone, "the store still lacks it"),
        ]


class RevokedStable(Scenario):
    """The TrustPolicy revokes the stable 1.0.0 (deniedDigests) while every gateway runs it,
    then the fix 3.0.0 is released. Expect: the operator flags it at once (StableRevoked), no
    gateway installs 1.0.0 anew, and 3.0.0 replaces it everywhere. Exposure here is every
    gateway that still ran the revoked version; time to roll back is revoked -> all on 3.0.0."""

    name, prefix = "revoked-stable", "rs"
    summary = "the stable version is revoked: flagged, never reinstalled, replaced by a fix"
    bad_version = V1

    def __init__(self) -> None:
        self.fixed = False
        self.reinstalls: set[str] = set()

    def inject(self, run: Run) -> None:
        digest = run.lane.shelf.build(V1).digest
        run.fleet.custom.patch_cluster_custom_object(
            GROUP, VERSION, "trustpolicies", run.lane.shelf.policy_name,
            {"spec": {"deniedDigests": [digest]}},
        )  # fmt: skip
        run.mark(FAULT, f"TrustPolicy revokes the stable {V1}")

    def tick(self, run: Run, view: FleetView) -> None:
        self.reinstalls |= {gw for gw, (v, st) in view.states.items() if v == V1 and st != "Active"}
        if run.timeline.first(DETECTED) is not None and not self.fixed:
            run.release(run.lane.shelf.build(V3), V3)
            run.mark(NOTE, f"release {V3}, the fix")
            self.fixed = True

    def detected(self, run: Run, view: FleetView) -> str | None:
        r = view.release
        if r.stable_revoked or (r.phase == "Rejected" and r.reason == "StableRevoked"):
            return f"{r.phase} ({r.reason}): stable flagged as revoked"
        return None

    def recovered(self, run: Run, view: FleetView) -> str | None:
        ok = self.fixed and on_spec(view, V3, "Succeeded") and view.all_on(V3)
        return f"every gateway on {V3}" if ok else None

    def checks(self, run: Run, view: FleetView) -> list[Check]:
        return [
            Check("the revoked stable was flagged", run.timeline.first(DETECTED) is not None,
                  "StableRevoked seen" if run.timeline.first(DETECTED) is not None else "never"),
            Check(f"no gateway installed {V1} anew", not self.reinstalls,
                  ", ".join(sorted(self.reinstalls)) or "none"),
            outcome_check(f"{V3} succeeded", on_spec(view, V3, "Succeeded"), view),
            back_on(view, V3),
        ]  # fmt: skip


class _NoBadVersion(Scenario):
    """A healthy 2.0.0 that must finish despite the fault; remembers whether a gateway outside
    the canary ring ran it while the rollout was still at the canary step (a skipped cohort)."""

    bad_version = None

    def __init__(self) -> None:
        self.skipped: set[str] = set()

    def tick(self, run: Run, view: FleetView) -> None:
        r = view.release
        if r.target == V2 and r.step == 0 and r.phase in ROLLING:
            self.skipped |= view.on(V2) - set(run.lane.canaries)

    def recovered(self, run: Run, view: FleetView) -> str | None:
        ok = on_spec(view, V2, "Succeeded") and view.all_on(V2)
        return f"{V2} succeeded on every gateway" if ok else None

    def common(self, view: FleetView) -> list[Check]:
        return [
            outcome_check(f"{V2} finished", on_spec(view, V2, "Succeeded"), view),
            back_on(view, V2),
            Check("no cohort skipped", not self.skipped,
                  ", ".join(sorted(self.skipped)) or "none beyond the ring at the canary step"),
        ]  # fmt: skip


class PartialRolloutOffline(_NoBadVersion):
    """Release a healthy 2.0.0; once the canaries run it, some gateways (a canary among them)
    lose the fleet API. Expect: the rollout holds (too few gateways reporting, or a
    cohort that cannot converge) instead of finishing over silent gateways; once they are back
    it completes. Measures time to detect (offline -> held) and to recover (-> finished)."""

    name, prefix = "partial-rollout-offline", "po"
    summary = "some gateways go offline mid-rollout: it holds, then finishes when they return"
    groups = (3, 2)  # the second simulator process goes offline

    def __init__(self) -> None:
        super().__init__()
        self.offline = False
        self.back = False
        self.finished_offline = False

    def inject(self, run: Run) -> None:
        run.release(run.lane.shelf.build(V2), V2)
        run.mark(NOTE, f"release {V2}")

    def _offline_names(self, run: Run) -> list[str]:
        return [gw for gw in run.lane.gateways if gw.startswith(f"{self.prefix}b-")]

    def tick(self, run: Run, view: FleetView) -> None:
        super().tick(run, view)
        r, group, names = view.release, run.lane.simulators[-1], self._offline_names(run)
        if not self.offline:
            canaries_on = all(view.states.get(gw) == (V2, "Active") for gw in run.lane.canaries)
            if r.target == V2 and canaries_on:
                group.pause()
                self.offline = True
                run.mark(FAULT, f"{len(names)} gateways lose the fleet API ({', '.join(names)})")
            return
        if not self.back:
            self.finished_offline |= r.phase == "Succeeded"
            detected = run.timeline.first(DETECTED)
            hold = 3 * run.fleet.settings.report_interval + 3
            if detected is not None and run.now() - detected >= hold:
                group.resume()
                self.back = True
                run.mark(NOTE, f"{len(names)} gateways back online")

    def detected(self, run: Run, view: FleetView) -> str | None:
        r = view.release
        if not self.offline or r.phase not in ROLLING or r.target != V2:
            return None
        online = set(run.lane.gateways) - set(self._offline_names(run))
        waiting_for_silent = (r.step or 0) >= 1 and all(
            view.states.get(gw) == (V2, "Active") for gw in online
        )
        if (r.phase == "Paused" and r.reason == "Inconclusive") or (
            waiting_for_silent and r.gate_reason == "NotConverged"
        ):
            return f"held at step {(r.step or 0) + 1} ({r.phase}): {r.gate_reason}"
        return None

    def recovered(self, run: Run, view: FleetView) -> str | None:
        return super().recovered(run, view) if self.back else None

    def checks(self, run: Run, view: FleetView) -> list[Check]:
        return [
            Check("held while gateways were offline",
                  run.timeline.first(DETECTED) is not None and not self.finished_offline,
                  "finished over silent gateways" if self.finished_offline else "held"),
            *self.common(view),
        ]  # fmt: skip


class TelemetryBlindSpot(Scenario):
    """Release 2.0.0 whose gateways report no traffic figures (0 requests: a blind spot).
    Expect: the gates are inconclusive, so the rollout holds at the canary step and never
    promotes on silence; at the progress deadline it aborts and the canaries return to 1.0.0.
    Measures time to detect (first canary running 2.0.0 -> Inconclusive) and roll back."""

    name, prefix = "telemetry-blind-spot", "tb"
    summary = "gateways stop reporting health: never promoted on silence, aborted at deadline"
    behaviour = {V2: {"requestsPerSecond": 0}}
    progress_deadline = "10s"

    def __init__(self) -> None:
        self.promoted = False

    def inject(self, run: Run) -> None:
        run.release(run.lane.shelf.build(V2), V2)
        run.mark(FAULT, f"release {V2}; its gateways send no traffic figures")

    def tick(self, run: Run, view: FleetView) -> None:
        r = view.release
        # (before the operator has seen the new spec, status still tells of the last rollout)
        self.promoted |= (r.target == V2 and (r.step or 0) > 0) or r.stable == V2

    def detected(self, run: Run, view: FleetView) -> str | None:
        r = view.release
        held = on_spec(view, V2, "Paused") and r.reason == "Inconclusive"
        return f"held (Paused, Inconclusive): {r.gate_reason}" if held else None

    def recovered(self, run: Run, view: FleetView) -> str | None:
        ok = on_spec(view, V2, "Aborted") and view.all_on(V1)
        return f"aborted ({view.release.reason}); every gateway back on {V1}" if ok else None

    def checks(self, run: Run, view: FleetView) -> list[Check]:
        return [
            Check("never promoted on silence", not self.promoted,
                  "promoted" if self.promoted else "stayed at the canary step"),
            outcome_check("aborted at the progress deadline", on_spec(view, V2, "Aborted"), view),
            within_canaries(run),
            back_on(view, V1),
        ]  # fmt: skip


class OperatorCrash(_NoBadVersion):
    """Release a healthy 2.0.0; once the canaries run it, SIGKILL the operator and start it
    again (--deployed: delete its Pods, or run --operator-restart-command, and wait for its
    Lease to be held again). Expect: the restarted operator picks the rollout up from status
    and finishes it, no cohort skipped. Measures time to detect (kill -> operator live again)
    and to recover (kill -> 2.0.0 succeeded everywhere)."""

    name, prefix = "operator-crash", "oc"
    summary = "the operator is killed mid-rollout: it restarts and finishes, no cohort skipped"

    def __init__(self) -> None:
        super().__init__()
        self.restarted = False
        self.how = self.revived = ""

    def refusal(self, fleet: DrillFleet) -> str | None:
        d = fleet.deployed
        if d is None or d.operator_restart_command or operator_pods(fleet.stack.api, d):
            return None
        return (
            f"{self.name} cannot run: no Pods match {d.operator_selector} in "
            f"{d.operator_namespace} to delete (an operator not run as Pods?); give "
            "--operator-restart-command or the right --operator-selector"
        )

    def inject(self, run: Run) -> None:
        run.release(run.lane.shelf.build(V2), V2)
        run.mark(NOTE, f"release {V2}")

    def tick(self, run: Run, view: FleetView) -> None:
        super().tick(run, view)
        if run.timeline.first(FAULT) is None and all(
            view.states.get(gw) == (V2, "Active") for gw in run.lane.canaries
        ):
            self.how = run.fleet.kill_operator()
            run.mark(FAULT, self.how)
            self.revived = run.fleet.revive_operator()
            self.restarted = True

    def detected(self, run: Run, view: FleetView) -> str | None:
        return self.revived if self.restarted else None

    def checks(self, run: Run, view: FleetView) -> list[Check]:
        return [
            Check(
                "the operator was killed and restarted",
                self.restarted,
                f"{self.how}; {self.revived}" if self.restarted else "not restarted",
            ),
            *self.common(view),
        ]


CATALOGUE: tuple[type[Scenario], ...] = (
    InvalidSignature,
    TamperedArtifact,
    CanaryRegression,
    PartialRolloutOffline,
    TelemetryBlindSpot,
    MissingStableArtifact,
    RevokedStable,
    OperatorCrash,
)
SCENARIOS: dict[str, type[Scenario]] = {s.name: s for s in CATALOGUE}

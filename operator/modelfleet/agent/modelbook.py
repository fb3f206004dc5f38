"""The bookkeeping of one model: what ``state.json`` records about it and what the agent
reports. The :class:`~.installer.ModelInstaller` acts (download, verify, activate, check);
:class:`ModelBook` records the outcome: the reported state and since when, which slot contents
passed their health check, whether a slot was verified under the trust policy in force now,
and which target failed (so it is not retried while the desired digest and policy stay)."""

from __future__ import annotations

import logging
from dataclasses import replace

from modelfleet.agent import metrics
from modelfleet.agent.clock import isoformat
from modelfleet.agent.context import InstallerContext
from modelfleet.agent.protocol import DesiredModel, ModelState
from modelfleet.agent.slots import Marker, ModelSlots
from modelfleet.agent.state import FailedTarget

log = logging.getLogger(__name__)

#: States written to state.json at once; the passing ones only ride along with the next write.
SETTLED = frozenset({ModelState.IDLE, ModelState.ACTIVE, ModelState.FAILED, ModelState.ROLLED_BACK})


class ModelBook:
    """Records and reports the state of one model of one gateway."""

    def __init__(self, ctx: InstallerContext, model: str, slots: ModelSlots) -> None:
        self.ctx = ctx
        self.model = model
        self.slots = slots
        #: How log lines name this model.
        self.who = f"gateway {ctx.gateway} model {model}"

    def report(self, d: DesiredModel | Marker | None, state: ModelState, message: str = "") -> None:
        """Record ``state`` (and ``message``) for ``d`` and wake the reporter, if it changed."""
        rec = self.ctx.state.get(self.model)
        version = d.version if d is not None else ""
        digest = d.digest if d is not None else ""
        slot = self.slots.active_slot() or ""
        if (rec.version, rec.digest, rec.slot, rec.state, rec.message) == (
            version, digest, slot, state, message,
        ):  # fmt: skip
            return
        since = rec.since if (rec.state, rec.digest) == (state, digest) and rec.since else ""
        self.ctx.state.put(
            self.model,
            replace(
                rec,
                version=version,
                digest=digest,
                slot=slot,
                state=state,
                message=message,
                since=since or isoformat(self.ctx.clock.now()),
            ),
            durable=state in SETTLED,
        )
        metrics.MODEL_STATES.set(self.ctx.gateway, self.model, state.value)
        self.ctx.notify()

    def healthy(self, slot: str | None) -> bool:
        """Whether what ``slot`` holds now passed its health check."""
        if slot is None:
            return False
        marker = self.slots.marker(slot)
        return marker is not None and self.ctx.state.get(self.model).healthy.get(slot) == (
            marker.digest
        )

    def trusted(self, slot: str) -> bool:
        """Whether ``slot`` was verified under the trust policy in force now (so it is not
        revoked: a changed policy file is re-read, see ``trustverifier.PolicyFile``)."""
        marker = self.slots.marker(slot)
        return marker is not None and marker.policy_digest == self.ctx.verifier.policy_digest

    def set_healthy(self, slot: str, digest: str | None) -> None:
        """Record that ``digest`` in ``slot`` passed its health check (None: forget it)."""
        rec = self.ctx.state.get(self.model)
        healthy = dict(rec.healthy)
        if digest is None:
            healthy.pop(slot, None)
        else:
            healthy[slot] = digest
        if healthy != rec.healthy:
            self.ctx.state.put(self.model, replace(rec, healthy=healthy))

    def failure(self) -> FailedTarget | None:
        """The failed target that stands under the trust policy in force now, if any."""
        failed = self.ctx.state.get(self.model).failed
        if failed is not None and failed.policy_digest == self.ctx.verifier.policy_digest:
            return failed
        return None

    def forget_failure(self, *, unless: str | None = None) -> None:
        """Forget the failed target (kept when its digest is ``unless``: asked for again)."""
        rec = self.ctx.state.get(self.model)
        if rec.failed is not None and rec.failed.digest != unless:
            self.ctx.state.put(self.model, replace(rec, failed=None))

    def fail(self, d: DesiredModel | Marker, state: ModelState, reason: str) -> None:
        """Record that ``d`` ended in ``state`` (failed or rolled back) and report it."""
        rec = self.ctx.state.get(self.model)
        self.ctx.state.put(
            self.model,
            replace(
                rec,
                failed=FailedTarget(
                    digest=d.digest,
                    version=d.version,
                    state=state,
                    reason=reason,
                    policy_digest=self.ctx.verifier.policy_digest,
                ),
            ),
        )
        if state is ModelState.FAILED:
            log.warning("%s: %s failed: %s", self.who, d.version, reason)
        self.report(d, state, reason)

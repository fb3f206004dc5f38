"""Bringing one model to its desired version: download, verify, activate, health-check, and
switch back on failure. One :class:`ModelInstaller` per model; :meth:`reconcile` is idempotent
and safe to cancel at any await (the agent cancels it when the desired version changes).

The order of a reconcile, from what is on disk (slots and markers) and in ``state.json``:

1. the active slot already holds the desired digest: done if it passed its health check,
   otherwise run the check (a restart interrupted it);
2. the active slot never passed a health check but the other slot did: switch back first;
3. the desired digest failed before under the same policy: report that, do not retry (a
   failure is forgotten once another digest is desired, so asking again later retries);
4. install into the inactive slot (reusing it when it already holds the verified digest),
   activate, health-check; on failure switch back to the last healthy slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from pathlib import Path

from modelfleet.agent import metrics
from modelfleet.agent.clock import Backoff, isoformat
from modelfleet.agent.context import Fetcher, InstallerContext
from modelfleet.agent.download import DownloadError
from modelfleet.agent.healthcheck import HealthTarget
from modelfleet.agent.modelbook import ModelBook
from modelfleet.agent.protocol import DesiredModel, ModelState
from modelfleet.agent.slotfiles import SlotFiles, artifact_file, fetch_files, file_name
from modelfleet.agent.slots import (
    PART_SUFFIX,
    SLOTS,
    Marker,
    ModelSlots,
    fsync_file,
    fsync_tree,
)
from modelfleet.errors import ModelfleetError
from modelfleet.fetch import is_out_of_space

log = logging.getLogger(__name__)

__all__ = ["Fetcher", "InstallerContext", "ModelInstaller"]


class ModelInstaller:
    """Installs desired versions of one model into its A/B slots."""

    def __init__(self, ctx: InstallerContext, model: str) -> None:
        self.ctx = ctx
        self.model = model
        self.slots = ModelSlots(
            ctx.data_dir / model, model, durable=ctx.durable, gateway=ctx.gateway
        )
        self.slots.ensure()
        self.book = ModelBook(ctx, model, self.slots)

    # -- reconcile --------------------------------------------------------------------------

    async def revalidate(self) -> None:
        """Re-verify, read-only, each verified slot whose marker was made under another trust
        policy (after a policy change and restart). A slot that no longer passes loses its
        marker; if it was active, the agent switches to the other slot when that one passes
        (checked first), else no model stays active. Either way the failure is reported."""
        policy = self.ctx.verifier.policy_digest
        active = self.slots.active_slot()
        for slot in sorted(SLOTS, key=lambda s: s == active):  # the inactive slot first
            marker = self.slots.marker(slot)
            if marker is None or marker.policy_digest == policy:
                continue
            try:
                files = SlotFiles.recorded(marker, self.slots.slot_dir(slot))
                request = files.request(self.model, marker, self.model, recheck=True)
                verified = await self.ctx.verifier.verify(request)
            except ModelfleetError as exc:
                self._untrusted(slot, marker, active, exc.diagnostics())
                continue
            self.slots.refresh_marker(
                slot,
                replace(
                    marker,
                    policy_digest=policy,
                    signature_digest=verified.signature_digest,
                    verified_at=isoformat(self.ctx.clock.now()),
                ),
            )
            log.info(
                "%s: %s in slot %s passes the new trust policy", self.book.who, marker.version, slot
            )

    def _untrusted(self, slot: str, marker: Marker, active: str | None, reason: str) -> None:
        message = f"{marker.version} no longer passes the trust policy: {reason}"
        if slot == active:
            other = self.slots.other(slot)
            fallback = self.slots.marker(other)
            if fallback is not None and fallback.policy_digest == self.ctx.verifier.policy_digest:
                self.slots.activate(other, fallback.digest)
                message += f"; switched to {fallback.version} in slot {other}"
            else:
                self.slots.deactivate()
                message += "; no trusted model left, none active"
        self.book.set_healthy(slot, None)
        self.slots.prepare(slot)
        log.warning("%s: %s", self.book.who, message)
        self.book.fail(marker, ModelState.FAILED, message)

    async def reconcile(self, d: DesiredModel) -> None:
        """Make ``d`` the active, healthy version of this model (or report why not)."""
        await self.revalidate()
        self.book.forget_failure(unless=d.digest)  # another one is asked for
        slots = self.slots
        active = slots.active_slot()
        marker = slots.marker(active) if active else None
        if active and marker and marker.digest == d.digest:
            if self.book.healthy(active):
                self.book.report(d, ModelState.ACTIVE)
            else:
                await self._health_gate(d, active, previous=slots.other(active))
            return
        if (
            active
            and not self.book.healthy(active)
            and self.book.healthy(slots.other(active))
            and self.book.trusted(slots.other(active))
        ):
            back = slots.other(active)
            back_marker = slots.marker(back)
            assert back_marker is not None  # _healthy checked it
            log.warning(
                "%s: active %s never passed its health check; switching back to %s in slot %s",
                self.book.who, marker.version if marker else "?", back_marker.version, back,
            )  # fmt: skip
            slots.activate(back, back_marker.digest)
            active = back
        failed = self.book.failure()
        if failed is not None:
            self.book.report(d, failed.state, failed.reason)
            return
        target = slots.other(active)
        tmarker = slots.marker(target)
        if not (
            tmarker is not None
            and tmarker.digest == d.digest
            and tmarker.policy_digest == self.ctx.verifier.policy_digest
        ):
            if not await self._install(d, target):
                return
        else:
            log.info(
                "%s: %s already verified in slot %s; reusing it", self.book.who, d.version, target
            )
        await self._health_gate(d, target, previous=active)

    async def _install(self, d: DesiredModel, slot: str) -> bool:
        """Download and verify ``d`` into ``slot``; False after reporting a failure.

        A digest mismatch is retried once with a fresh download (a partial file resumed after
        a power loss may hold garbage); a full disk while verifying or unpacking empties the
        slot and is retried with backoff (space may free); any other verification failure is
        final.
        """
        artifact_name = artifact_file(d.digest)
        self.book.set_healthy(slot, None)
        storage_backoff = Backoff(base=2.0, cap=self.ctx.retry_cap)
        attempt = 0
        while attempt < 2:
            attempt += 1
            slot_dir = self.slots.prepare(slot, keep_part=artifact_name + PART_SUFFIX)
            self.book.report(d, ModelState.DOWNLOADING)
            await self.ctx.verifier.prepare()
            started = time.perf_counter()
            files = await self._download_with_retries(d, slot_dir)
            metrics.observe("download", started, ok=files is not None)
            if files is None:
                return False
            self.book.report(d, ModelState.DOWNLOADED)
            self.book.report(d, ModelState.VERIFYING)
            request = files.request(self.model, d, file_name(d.artifact_uri, self.model))
            durable = asyncio.create_task(self._make_durable(files.artifact))
            try:
                with metrics.stage("verify"):
                    verified = await self.ctx.verifier.verify(request)
                await durable  # written back while verification read it
                await self._make_durable(slot_dir, tree=True)
                self.slots.write_marker(
                    slot,
                    files.marker(
                        d,
                        verified,
                        policy_digest=self.ctx.verifier.policy_digest,
                        verified_at=isoformat(self.ctx.clock.now()),
                    ),
                )
                break
            except (ModelfleetError, OSError) as exc:
                await asyncio.gather(durable, return_exceptions=True)
                if is_out_of_space(exc):
                    self.slots.prepare(slot)  # free what this install took
                    await self._storage_retry(d, exc, storage_backoff)
                    attempt -= 1
                    continue
                if not isinstance(exc, ModelfleetError):
                    raise
                self.slots.prepare(slot)  # drop the untrusted bytes
                if attempt == 1 and getattr(exc, "check", "") == "digest":
                    log.warning(
                        "%s: %s: %s; downloading it again from scratch",
                        self.book.who, d.version, exc.diagnostics(),
                    )  # fmt: skip
                    continue
                self.book.fail(d, ModelState.FAILED, f"verification failed: {exc.diagnostics()}")
                return False
            finally:
                durable.cancel()
        else:  # pragma: no cover - the loop always breaks or returns
            return False
        log.info(
            "%s: %s (%s) verified in slot %s%s",
            self.book.who, d.version, d.digest, slot,
            f", signed by {verified.signer}" if verified.signer else "",
        )  # fmt: skip
        return True

    async def _storage_retry(self, d: DesiredModel, exc: BaseException, backoff: Backoff) -> None:
        delay = backoff.next_delay()
        detail = exc.diagnostics() if isinstance(exc, ModelfleetError) else str(exc)
        log.warning(
            "%s: no space left for %s (%s); slot emptied, retrying in %.1fs",
            self.book.who, d.version, detail, delay,
        )  # fmt: skip
        self.book.report(
            d, ModelState.DOWNLOADING, f"retrying in {delay:.0f}s: no space left: {detail}"
        )
        await self.ctx.clock.sleep(delay)

    async def _make_durable(self, path: Path, *, tree: bool = False) -> None:
        if self.ctx.durable:
            await asyncio.to_thread(fsync_tree if tree else fsync_file, path)

    async def _download_with_retries(self, d: DesiredModel, slot_dir: Path) -> SlotFiles | None:
        """Download everything, retrying transient errors with backoff; None after a
        permanent failure (reported)."""
        backoff = Backoff(base=2.0, cap=self.ctx.retry_cap)
        while True:
            try:
                return await fetch_files(self.ctx, d, slot_dir, self.book.who)
            except DownloadError as exc:
                if not exc.transient:
                    self.book.fail(d, ModelState.FAILED, f"download failed: {exc.diagnostics()}")
                    return None
                delay = backoff.next_delay()
                log.warning(
                    "%s: download of %s failed (%s); retrying in %.1fs",
                    self.book.who, d.version, exc.diagnostics(), delay,
                )  # fmt: skip
                self.book.report(d, ModelState.DOWNLOADING, f"retrying in {delay:.0f}s: {exc}")
                await self.ctx.clock.sleep(delay)

    async def _health_gate(self, d: DesiredModel, slot: str, *, previous: str | None) -> None:
        """Activate ``slot`` (if not already), health-check it, switch back on failure."""
        slots = self.slots
        marker = slots.marker(slot)
        assert marker is not None and marker.digest == d.digest
        self.book.report(d, ModelState.ACTIVATING)
        started = time.perf_counter()
        if slots.active_slot() != slot:
            slots.activate(slot, d.digest)
            metrics.SLOT_SWITCHES.labels("activate").inc()
            log.info("%s: activated %s in slot %s", self.book.who, d.version, slot)
            self.book.report(d, ModelState.ACTIVATING)
        path = slots.active_link / marker.model_path
        result = await self.ctx.health_check.check(
            HealthTarget(
                model=self.model,
                version=d.version,
                digest=d.digest,
                path=path,
                gateway=self.ctx.gateway,
            )
        )
        metrics.observe("activate", started, ok=result.ok)
        if result.ok:
            self.book.set_healthy(slot, d.digest)
            self.book.forget_failure()
            self.book.report(d, ModelState.ACTIVE)
            log.info("%s: %s is active and healthy in slot %s", self.book.who, d.version, slot)
            return
        # The policy may have changed during the check: roll back only to what it trusts now.
        fallback = previous if previous is not None and self.book.healthy(previous) else None
        untrusted = fallback is not None and not self.book.trusted(fallback)
        if fallback is not None and not untrusted:
            fmarker = slots.marker(fallback)
            assert fmarker is not None
            slots.activate(fallback, fmarker.digest)
            metrics.SLOT_SWITCHES.labels("rollback").inc()
            reason = (
                f"{result.reason}; rolled back to {fmarker.version} ({fmarker.digest}) "
                f"in slot {fallback}"
            )
        elif untrusted:
            slots.deactivate()
            reason = (
                f"{result.reason}; the previous model was not verified under the trust policy "
                "in force, none active"
            )
        else:
            slots.deactivate()
            reason = f"{result.reason}; no previous healthy model, none active"
        log.warning("%s: %s failed its health check: %s", self.book.who, d.version, reason)
        self.book.fail(d, ModelState.ROLLED_BACK, reason)

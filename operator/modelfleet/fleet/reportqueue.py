"""Reports answered once accepted, written behind: the path of reports that carry a ``sequence``.

A report is validated, then decided on this replica's copy of the gateway's status (its watch),
with no request to the API server (:func:`~modelfleet.fleet.coalesce.order_of`):

* **already applied** (status holds its number or a later one of its session): answered
  ``written: false``;
* **next in order** (status holds the number before it) and nothing due: coalesced, answered
  ``written: false``; status holds every write promised before it, so no other replica can have
  anything pending that this copy lacks (the confirming read before coalescing is gone);
* otherwise **queued** and answered ``written: true``: a promise that status will hold this report
  (or a later one of the same gateway). The agent then numbers its next report one higher.

Behind the answer, one task per gateway with queued reports writes them in the order received,
each with the resourceVersion its plan was made on (409: read, plan again). A report whose
predecessor another replica promised waits for that write to reach this copy (the watch), for as
long as status keeps moving and at most ``order_wait`` seconds without a change; then it reads the
EdgeGateway once and, if the promised write is still missing (the replica that promised it died),
writes anyway unless status already holds a report received later. Writes in flight at once are
bounded (``concurrency``), and so are queued reports (``max_queued``: beyond it a report is
refused with 503 and Retry-After, nothing queued).

If this process dies with reports queued, those writes never happen: the agent's next report (a
full snapshot) carries the same state again, and its predecessor's wait ends after
``order_wait`` and one read. SIGTERM first writes what is queued (:meth:`ReportQueue.flush`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelfleet.fleet.coalesce import CoalescePolicy, Order, StatusPatch, order_of
from modelfleet.fleet.coalesce import plan_status_patch as plan
from modelfleet.fleet.index import FleetIndex, GatewayEntry, Key
from modelfleet.fleet.metrics import FleetMetrics
from modelfleet.fleet.statuswriter import StatusWriter, superseded
from modelfleet.kube import ApiError
from modelfleet.protocol import ProtocolError, Report, ReportSequence

log = logging.getLogger(__name__)

ATTEMPTS = 8


@dataclass(frozen=True)
class QueueSettings:
    """How reports are written behind their answer."""

    concurrency: int = 32
    """Status writes in flight at once, per process."""
    max_queued: int = 50_000
    """Reports queued at once; beyond it reports are refused with 503 (retry later)."""
    order_wait: float = 5.0
    """Seconds a report waits, with no change to its gateway's status, for a write another
    replica promised before it; then one read decides."""
    retry_for: float = 60.0
    """Seconds a write is retried while the API server fails; then it is dropped (the agent's
    next report carries the state again)."""


@dataclass(frozen=True)
class Queued:
    report: Report
    sequence: ReportSequence
    received: dt.datetime
    active: bool
    planned: dict[str, Any]  # the status fields its write was planned to set, when accepted


class _Slots:
    """At most ``size`` writes in flight; state changes go ahead of health and heartbeats (a
    backlog of routine writes must not hold back a rollback)."""

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiting: tuple[collections.deque[asyncio.Future[None]], ...] = (
            collections.deque(), collections.deque(),
        )  # fmt: skip

    async def acquire(self, urgent: bool) -> None:
        if self.free > 0 and not any(self.waiting):
            self.free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[0 if urgent else 1].append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted, then cancelled: hand the slot on
            raise

    def release(self) -> None:
        for line in self.waiting:
            while line:
                fut = line.popleft()
                if not fut.done():
                    fut.set_result(None)
                    return
        self.free += 1


@dataclass(frozen=True)
class Decision:
    """What the answer says: ``written`` (queued) and the reasons planned on this copy."""

    written: bool
    reasons: tuple[str, ...] = ()


class ReportQueue:
    """Accepts sequenced reports and writes them behind the answer (see the module docstring)."""

    def __init__(
        self,
        writer: StatusWriter,
        settings: QueueSettings,
        *,
        on_written: Callable[[GatewayEntry, Report, StatusPatch], None] | None = None,
    ) -> None:
        self.writer = writer
        self.index: FleetIndex = writer.index
        self.metrics: FleetMetrics = writer.metrics
        self.policy: CoalescePolicy = writer.policy
        self.settings = settings
        self._pending: dict[Key, collections.deque[Queued]] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._slots = _Slots(settings.concurrency)
        self._queued = 0
        self._on_written = on_written

    @property
    def queued(self) -> int:
        return self._queued

    # ------------------------------------------------------------------ the answer

    def accept(
        self, entry: GatewayEntry, report: Report, received: dt.datetime, active: bool
    ) -> Decision:
        """Decide on this replica's copy; queue the write when one is due. No I/O."""
        seq = report.sequence
        assert seq is not None
        key = entry.key
        waiting = self._pending.get(key)
        status: dict[str, Any] = entry.status
        if waiting:  # this replica holds earlier reports of the gateway: decide behind them
            if any(q.sequence.session == seq.session and q.sequence.number >= seq.number
                   for q in waiting):  # fmt: skip
                self.metrics.reports.labels("applied").inc()
                return Decision(False)
            for q in waiting:  # the status those writes will leave (reportSequence included)
                status = {**status, **q.planned}
        order = order_of(status, seq)  # a report answered elsewhere in between: not NEXT
        if order is Order.APPLIED:
            self.metrics.reports.labels("applied").inc()
            return Decision(False)
        patch = plan(status, report, now=received, in_active_cohort=active,
                     policy=self.policy, force=order is not Order.NEXT)  # fmt: skip
        if patch is None:
            self.metrics.reports.labels("coalesced").inc()
            self.metrics.coalesced.inc()
            return Decision(False)
        item = Queued(report, seq, received, active, patch.status)
        return self._queue(key, item, patch.reasons)

    def _queue(self, key: Key, item: Queued, reasons: tuple[str, ...]) -> Decision:
        if self._queued >= self.settings.max_queued:
            self.metrics.reports.labels("refused").inc()
            raise ProtocolError(
                503, "upstream_unavailable",
                "too many reports are waiting to be written; nothing was queued, retry later",
                Retry_After=str(self.writer.retry_after),
            )  # fmt: skip
        self._pending.setdefault(key, collections.deque()).append(item)
        self._queued += 1
        self.metrics.reports.labels("queued").inc()
        self.metrics.report_queue.set(self._queued)
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._drain(key), name=f"report {key}")
        return Decision(True, reasons)

    # ------------------------------------------------------------------ behind the answer

    async def _drain(self, key: Key) -> None:
        try:
            while items := self._pending.get(key):
                item = items[0]
                try:
                    await self._write(key, item)
                except ProtocolError as err:
                    self.metrics.report_write_failures.labels(err.code).inc()
                    log.warning("gateway %s/%s: report not written: %s", *key, err.message)
                except Exception:
                    self.metrics.report_write_failures.labels("internal").inc()
                    log.exception("gateway %s/%s: report not written", *key)
                items.popleft()
                self._queued -= 1
                self.metrics.report_queue.set(self._queued)
        finally:
            self._pending.pop(key, None)
            self._tasks.pop(key, None)

    async def _write(self, key: Key, item: Queued) -> None:
        waited_since = time.monotonic()
        read = False
        failing_since: float | None = None
        attempts = 0
        while attempts < ATTEMPTS:
            entry = self.index.gateways.get(key)
            if entry is None:
                return  # deleted: nothing to write to
            order = order_of(entry.status, item.sequence)
            if order is Order.APPLIED:
                return
            if order is Order.WAIT and not read:
                remaining = self.settings.order_wait - (time.monotonic() - waited_since)
                if remaining > 0:
                    moved = await _wait(self.index.status_changed(key), remaining)
                    if moved:
                        waited_since = time.monotonic()  # status moves: keep waiting
                    continue
                await self.writer.read(entry, "order")
                read = True
                continue
            if order is Order.WAIT and superseded(entry.status, item.received):
                return  # a report received later (another agent session) is already written
            patch = plan(entry.status, item.report, now=item.received,
                         in_active_cohort=item.active, policy=self.policy,
                         force=True)  # fmt: skip
            assert patch is not None
            try:
                written = await self._patch(entry, patch)
            except ApiError as exc:
                if exc.conflict:
                    attempts += 1
                    await self.writer.read(entry, "conflict")
                    read = True
                    continue
                if exc.status in (404, 400, 422):
                    raise self.writer.refused(entry, exc) from exc
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > self.settings.retry_for:
                    raise self.writer.refused(entry, exc) from exc
                await asyncio.sleep(min(5.0, 0.5 * 2 ** min(attempts, 4)))
                continue
            self.index.update_status(written)
            self.metrics.status_writes.labels(patch.reasons[0]).inc()
            if self._on_written is not None:
                self._on_written(entry, item.report, patch)
            return
        raise ProtocolError(503, "upstream_unavailable", "status kept changing while written")

    async def _patch(self, entry: GatewayEntry, patch: StatusPatch) -> dict[str, Any]:
        version = entry.resource_version  # the copy the plan was made on
        await self._slots.acquire(urgent=bool({"models", "agentVersion"} & set(patch.reasons)))
        try:
            return await self.writer.patch(entry, patch, version)
        finally:
            self._slots.release()

    async def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every queued report to be written (SIGTERM);
        the number still queued afterwards."""
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        return self._queued

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _wait(future: asyncio.Future[None], timeout: float) -> bool:
    """Whether ``future`` resolved within ``timeout`` seconds."""
    done, _ = await asyncio.wait({future}, timeout=timeout)
    return bool(done)

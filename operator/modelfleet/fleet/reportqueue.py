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
each planned on the copy it is written over and sent with that copy's resourceVersion (409: read,
plan again). Reports that queued up behind one another while their gateway waited for a write slot
are **folded** into one write: the newest snapshot, with the health windows of all of them, and
the newest sequence number (so each is applied); only reports numbered one after another, so none
that another replica promised is skipped. A report naming a failure (``Failed``,
``RolledBack``) is never folded into a later one: the operator's gates count it, so it is written
as it was. During a rollback an agent reports Activating then Active within milliseconds; with
writes backed up, that is one write instead of two. A report whose
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
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelfleet.core.gateway import FAILED_STATES
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
    urgent: bool = False  # a state change: written ahead of health and heartbeats

    @property
    def names_failure(self) -> bool:
        return any(m.state in FAILED_STATES for m in self.report.models)


def foldable(items: collections.deque[Queued]) -> int:
    """How many queued reports, from the first, one write carries: reports numbered one after
    another in the first one's agent session (none promised by another replica in between), up
    to and including the first that names a failure."""
    count = 1
    for earlier, later in itertools.pairwise(items):
        if (
            earlier.names_failure
            or later.sequence.session != earlier.sequence.session
            or later.sequence.number != earlier.sequence.number + 1
        ):
            break
        count += 1
    return count


def fold(items: collections.deque[Queued], count: int) -> Queued:
    """The first ``count`` queued reports as one: the newest snapshot with every health window."""
    group = list(itertools.islice(items, count))
    last = group[-1]
    if count == 1:
        return last
    health = tuple(h for q in group for h in q.report.health)
    report = last.report.model_copy(update={"health": health})
    return Queued(report, last.sequence, last.received, last.active, last.planned, last.urgent)


@dataclass(frozen=True)
class _Written:
    entry: GatewayEntry
    status: dict[str, Any]
    report: Report
    patch: StatusPatch
    count: int  # queued reports this write applied


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
        urgent = bool({"models", "agentVersion"} & set(patch.reasons))
        item = Queued(report, seq, received, active, patch.status, urgent)
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
                done = 1  # on failure the first report is dropped; the rest are tried again
                try:
                    done = await self._write(key, items)
                except ProtocolError as err:
                    self.metrics.report_write_failures.labels(err.code).inc()
                    log.warning("gateway %s/%s: report not written: %s", *key, err.message)
                except Exception:
                    self.metrics.report_write_failures.labels("internal").inc()
                    log.exception("gateway %s/%s: report not written", *key)
                for _ in range(done):
                    items.popleft()
                self._queued -= done
                self.metrics.report_queue.set(self._queued)
        finally:
            self._pending.pop(key, None)
            self._tasks.pop(key, None)

    async def _write(self, key: Key, items: collections.deque[Queued]) -> int:
        """Write the first queued report (and those folded with it); how many it applied."""
        item = items[0]
        waited_since = time.monotonic()
        read = False
        failing_since: float | None = None
        attempts = 0
        while attempts < ATTEMPTS:
            entry = self.index.gateways.get(key)
            if entry is None:
                return 1  # deleted: nothing to write to
            order = order_of(entry.status, item.sequence)
            if order is Order.APPLIED:
                return 1
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
                return 1  # a report received later (another agent session) is already written
            try:
                written = await self._patch(key, items)
            except ApiError as exc:
                if exc.conflict:
                    attempts += 1
                    read = True
                failing_since = await self._after_error(entry, exc, attempts, failing_since)
                continue
            if written is None:
                continue  # the copy moved while waiting for a slot: decide again
            self.index.update_status(written.status)
            self.metrics.status_writes.labels(written.patch.reasons[0]).inc()
            if written.count > 1:
                self.metrics.reports_folded.inc(written.count - 1)
            if self._on_written is not None:
                self._on_written(written.entry, written.report, written.patch)
            return written.count
        raise ProtocolError(503, "upstream_unavailable", "status kept changing while written")

    async def _after_error(
        self, entry: GatewayEntry, exc: ApiError, attempts: int, failing_since: float | None
    ) -> float | None:
        """A failed write: read again after a conflict, give up on a refusal or after
        ``retry_for`` seconds of failures, else wait before the next attempt."""
        if exc.conflict:
            await self.writer.read(entry, "conflict")
            return failing_since
        if exc.status in (404, 400, 422):
            raise self.writer.refused(entry, exc) from exc
        failing_since = failing_since or time.monotonic()
        if time.monotonic() - failing_since > self.settings.retry_for:
            raise self.writer.refused(entry, exc) from exc
        await asyncio.sleep(min(5.0, 0.5 * 2 ** min(attempts, 4)))
        return failing_since

    async def _patch(self, key: Key, items: collections.deque[Queued]) -> _Written | None:
        """Take a write slot, then plan on the copy as it is now, folding in what queued up
        meanwhile. None when that copy already holds the first report (decide again)."""
        await self._slots.acquire(urgent=any(q.urgent for q in items))
        try:
            entry = self.index.gateways.get(key)
            if entry is None or order_of(entry.status, items[0].sequence) is Order.APPLIED:
                return None
            count = foldable(items)
            item = fold(items, count)
            patch = plan(entry.status, item.report, now=item.received,
                         in_active_cohort=item.active, policy=self.policy,
                         force=True)  # fmt: skip
            assert patch is not None
            status = await self.writer.patch(entry, patch, entry.resource_version)
            return _Written(entry, status, item.report, patch, count)
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

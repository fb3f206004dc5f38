"""Sequenced reports: decided on the replica's copy, answered at once, written behind in order.

The API server is the scripted stand-in of test_statuswriter (merge patch of status, 409 on a
stale resourceVersion); the real race with two fleet API processes and a lagging watch is
tests/integration/test_fleet_replicas.py::test_a_gateway_alternating_replicas_loses_and_reorders
_no_report[queued-sequenced].
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelfleet.fleet.coalesce import Order, order_of
from modelfleet.fleet.reportqueue import QueueSettings, ReportQueue
from modelfleet.protocol import ProtocolError, Report, ReportSequence

from .test_statuswriter import FP, T0, Server, report, setup

SESSION = "agent-session-1"


def numbered(state: str, number: int, session: str = SESSION) -> Report:
    return report(state).model_copy(
        update={"sequence": ReportSequence(session=session, number=number)}
    )


def held(number: int, session: str = SESSION) -> dict[str, Any]:
    return {"reportSequence": {"session": session, "number": number}}


@pytest.mark.parametrize(
    ("status", "number", "order"),
    [
        ({}, 1, Order.FIRST),  # a new agent session starts at 1
        ({}, 2, Order.WAIT),  # number 1 was promised: not in this copy yet
        (held(4, "other-session"), 1, Order.FIRST),
        (held(4, "other-session"), 5, Order.WAIT),  # numbers of another session say nothing
        (held(4), 5, Order.NEXT),
        (held(4), 4, Order.NEXT),  # sent again (no answer came): planned on this copy
        (held(4), 3, Order.APPLIED),  # a later report is already applied
        (held(4), 7, Order.WAIT),
        ({"reportSequence": {"session": SESSION, "number": "4"}}, 5, Order.WAIT),  # unreadable
    ],
)
def test_order_of(status: dict[str, Any], number: int, order: Order) -> None:
    assert order_of(status, ReportSequence(session=SESSION, number=number)) is order


def queue_for(server: Server, **settings: Any) -> tuple[ReportQueue, Any]:
    writer, index = setup(server)
    return ReportQueue(writer, QueueSettings(**settings)), index


def entry_of(index: Any) -> Any:
    entry = index.identify(FP)
    assert entry is not None
    return entry


async def test_a_report_next_in_order_with_nothing_due_is_coalesced_without_a_read() -> None:
    server = Server("Active")
    server.status.update(held(3))
    queue, index = queue_for(server)
    decision = queue.accept(entry_of(index), numbered("Active", 4), T0, True)
    assert decision.written is False
    await queue.flush(1)
    assert server.gets == 0 and server.patches == []


async def test_a_state_change_is_answered_at_once_and_written_behind() -> None:
    server = Server("Active")
    server.status.update(held(3))
    queue, index = queue_for(server)
    decision = queue.accept(entry_of(index), numbered("Downloading", 4), T0, True)
    assert decision.written is True and "models" in decision.reasons
    assert server.patches == []  # answered before the write
    assert await queue.flush(5) == 0
    assert server.status["models"][0]["state"] == "Downloading"
    assert server.status["reportSequence"] == {"session": SESSION, "number": 4}
    assert server.gets == 0


async def test_a_report_waits_for_the_write_another_replica_promised() -> None:
    """Report 5 reaches this replica while report 4, promised by the other, is not written yet:
    it is written only after report 4 reached this copy, so it never lands first."""
    server = Server("Active")
    server.status.update(held(3))
    queue, index = queue_for(server, order_wait=10.0)
    assert queue.accept(entry_of(index), numbered("Active", 5), T0, True).written is True
    await asyncio.sleep(0.05)
    assert server.patches == []  # waiting for number 4
    server.other_replica_writes("Verifying", T0)
    server.status.update(held(4))
    index.upsert_gateway(server.obj())  # the watch brings the other replica's write
    assert await queue.flush(5) == 0
    assert [p["status"]["reportSequence"]["number"] for p in server.patches] == [5]
    assert server.status["models"][0]["state"] == "Active"
    assert server.gets == 0


async def test_a_promised_write_that_never_comes_is_given_up_after_one_read() -> None:
    """The replica that promised report 4 died with it queued: report 5 waits order_wait with
    no change, reads once, and is written."""
    server = Server("Active")
    server.status.update(held(3))
    queue, index = queue_for(server, order_wait=0.05)
    queue.accept(entry_of(index), numbered("Downloading", 5), T0, True)
    assert await queue.flush(5) == 0
    assert server.gets == 1
    assert server.status["models"][0]["state"] == "Downloading"


async def test_reports_queued_on_one_replica_are_written_in_order() -> None:
    """One write at a time (a slot each): every report is written, in the order received."""
    server = Server("Active")
    server.status.update(held(3))
    queue, index = queue_for(server)
    states = ["Downloading", "Verifying", "Active"]
    for i, state in enumerate(states):
        assert queue.accept(entry_of(index), numbered(state, 4 + i), T0, True).written is True
        assert await queue.flush(5) == 0
    assert [p["status"]["models"][0]["state"] for p in server.patches] == states


async def queued_behind_a_busy_slot(
    server: Server, reports: list[Report], **settings: Any
) -> tuple[ReportQueue, list[str]]:
    """Accept ``reports`` while the only write slot is taken (the API server busy with another
    gateway's write), then free it; the queue and the states written, in order."""
    server.status.update(held(3))
    queue, index = queue_for(server, concurrency=1, **settings)
    await queue._slots.acquire(urgent=False)
    for r in reports:
        assert queue.accept(entry_of(index), r, T0, True).written is True
    await asyncio.sleep(0)
    queue._slots.release()
    assert await queue.flush(5) == 0
    return queue, [p["status"]["models"][0]["state"] for p in server.patches]


async def test_reports_queued_up_behind_a_write_are_folded_into_one() -> None:
    """Reports that queued up while the gateway waited for a write slot: one write, the newest
    snapshot with the newest number (each report applied), every health window offered."""
    server = Server("Idle")
    states = ["Downloading", "Verifying", "Activating", "Active"]
    queue, written = await queued_behind_a_busy_slot(
        server, [numbered(state, 4 + i) for i, state in enumerate(states)]
    )
    assert written == ["Active"]
    assert server.status["reportSequence"]["number"] == 7
    assert queue.metrics.reports_folded._value.get() == 3


async def test_a_failure_is_never_folded_away() -> None:
    """The operator's gates count a Failed report: reports queued before it fold into it, and
    the ones after it are written after it."""
    server = Server("Idle")
    states = ["Downloading", "Failed", "Downloading", "Verifying"]
    _, written = await queued_behind_a_busy_slot(
        server, [numbered(state, 4 + i) for i, state in enumerate(states)]
    )
    assert written == ["Failed", "Verifying"]
    assert server.status["reportSequence"]["number"] == 7


async def test_reports_of_another_agent_session_are_not_folded() -> None:
    server = Server("Active")
    reports = [numbered("Downloading", 4), numbered("Active", 1, "restarted")]
    _, written = await queued_behind_a_busy_slot(server, reports)
    assert written == ["Downloading", "Active"]
    assert server.status["reportSequence"] == {"session": "restarted", "number": 1}


async def test_reports_with_a_gap_between_them_are_not_folded() -> None:
    """Report 5 went to another replica: 4 and 6 queued here are written apart, so 5 (promised
    there) is not skipped."""
    reports = [numbered("Downloading", 4), numbered("Active", 6)]
    _, written = await queued_behind_a_busy_slot(Server("Idle"), reports, order_wait=0.05)
    assert written == ["Downloading", "Active"]


async def test_a_report_already_applied_or_queued_is_not_written_again() -> None:
    server = Server("Active")
    server.status.update(held(6))
    queue, index = queue_for(server)
    assert queue.accept(entry_of(index), numbered("Downloading", 5), T0, True).written is False
    assert queue.accept(entry_of(index), numbered("Verifying", 7), T0, True).written is True
    assert queue.accept(entry_of(index), numbered("Verifying", 7), T0, True).written is False
    assert await queue.flush(5) == 0
    assert len(server.patches) == 1


async def test_a_full_queue_refuses_with_503_and_queues_nothing() -> None:
    server = Server("Active")
    server.status.update(held(3))
    queue, index = queue_for(server, max_queued=1, order_wait=10.0)
    queue.accept(entry_of(index), numbered("Downloading", 5), T0, True)  # waits for number 4
    with pytest.raises(ProtocolError) as err:
        queue.accept(entry_of(index), numbered("Verifying", 6), T0, True)
    assert err.value.status == 503 and "Retry-After" in err.value.headers
    assert queue.queued == 1
    await queue.close()


async def test_a_conflict_is_read_and_planned_again() -> None:
    server = Server("Active")
    server.status.update(held(3))
    queue, index = queue_for(server)
    queue.accept(entry_of(index), numbered("Downloading", 4), T0, True)
    server.rv += 1  # someone else wrote status meanwhile (e.g. an older agent's report)
    assert await queue.flush(5) == 0
    assert server.gets == 1 and server.status["reportSequence"]["number"] == 4


async def test_a_report_adding_nothing_to_a_queued_one_is_coalesced() -> None:
    """While a gateway's write waits, a report that says what the queued one will write is not
    queued as well (a backlog must not turn every report into a write)."""
    server = Server("Active")
    server.status.update(held(3))
    queue, index = queue_for(server, order_wait=10.0)
    assert queue.accept(entry_of(index), numbered("Downloading", 5), T0, True).written is True
    assert queue.accept(entry_of(index), numbered("Downloading", 6), T0, True).written is False
    assert queue.accept(entry_of(index), numbered("Verifying", 6), T0, True).written is True
    assert queue.queued == 2
    await queue.close()


async def test_state_changes_are_written_ahead_of_routine_writes() -> None:
    from modelfleet.fleet.reportqueue import _Slots

    slots = _Slots(1)
    await slots.acquire(urgent=False)
    order: list[str] = []

    async def take(name: str, urgent: bool) -> None:
        await slots.acquire(urgent)
        order.append(name)
        slots.release()

    tasks = [
        asyncio.create_task(take("heartbeat", False)),
        asyncio.create_task(take("state", True)),
    ]
    await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(*tasks)
    assert order == ["state", "heartbeat"]

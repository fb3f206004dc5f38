"""The agent loop with an in-process transport: poll, install, report, offline behaviour."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from modelfleet.agent.core import GatewayAgent
from modelfleet.agent.protocol import DesiredState, ModelState
from modelfleet.agent.transport import FleetError

from .helpers import (
    FakeTransport,
    FastClock,
    ScriptedCheck,
    StaticHealth,
    desired,
    make_agent,
    versions,
)


async def wait_until(cond: Callable[[], bool], what: str) -> None:
    for _ in range(2000):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def running(agent: GatewayAgent) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(agent.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def last_state(t: FakeTransport, model: str = "detector") -> tuple[str, str] | None:
    for report in reversed(t.reports):
        for m in report.models:
            if m.model == model:
                return (m.version, m.state.value)
    return None


async def test_agent_installs_the_desired_model_and_reports_active(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0")
    t = FakeTransport(DesiredState("gw-1", (desired(v["1.0"], "1.0"),), 7.0, etag='"e1"'))
    clock = FastClock()
    agent = make_agent(tmp_path / "data", v["1.0"].policy_path, t, clock=clock)
    async with running(agent):
        await wait_until(lambda: last_state(t) == ("1.0", "Active"), "Active report")
        await wait_until(lambda: '"e1"' in t.etags_seen, "conditional poll")
    assert t.reports[-1].agent_version
    assert 7.0 in clock.sleeps  # pollAfterSeconds honoured
    m = t.reports[-1].models[0]
    assert (m.slot, m.digest) == ("A", v["1.0"].digest)


async def test_rollout_and_local_rollback_are_reported(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    t = FakeTransport(DesiredState("gw-1", (desired(v["1.0"], "1.0"),), etag="1"))
    check = ScriptedCheck(failing={"2.0": "probe: HTTP 500"})
    agent = make_agent(tmp_path / "data", v["1.0"].policy_path, t, check)
    async with running(agent):
        await wait_until(lambda: last_state(t) == ("1.0", "Active"), "1.0 Active")
        t.desired = DesiredState("gw-1", (desired(v["2.0"], "2.0"),), etag="2")
        await wait_until(lambda: last_state(t) == ("2.0", "RolledBack"), "2.0 RolledBack")
    report = t.reports[-1].models[0]
    assert "probe: HTTP 500" in report.message and report.slot == "A"


async def test_offline_agent_keeps_the_active_model_and_backs_off(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0")
    t = FakeTransport(DesiredState("gw-1", (desired(v["1.0"], "1.0"),), etag="1"))
    agent = make_agent(tmp_path / "data", v["1.0"].policy_path, t)
    async with running(agent):
        await wait_until(lambda: last_state(t) == ("1.0", "Active"), "Active")
    clock = FastClock()
    t.offline = True
    again = make_agent(tmp_path / "data", v["1.0"].policy_path, t, clock=clock)
    async with running(again):
        await wait_until(lambda: len(clock.sleeps) > 40, "retries")
        assert again.installer("detector").slots.active_slot() == "A"
        assert not again.online
        t.offline = False
        n = len(t.reports)
        await wait_until(lambda: len(t.reports) > n and again.online, "reconnect")
    assert max(clock.sleeps) <= 300
    assert max(clock.sleeps) > 30  # the backoff grew past the first delays


async def test_health_windows_are_reported_once(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0")
    t = FakeTransport(DesiredState("gw-1", (desired(v["1.0"], "1.0"),), etag="1"))
    health = StaticHealth()
    agent = make_agent(tmp_path / "data", v["1.0"].policy_path, t, health=health)
    async with running(agent):
        await wait_until(lambda: any(r.health for r in t.reports), "health report")
    sent = [h for r in t.reports for h in r.health]
    assert {(h.model, h.version) for h in sent} == {("detector", "1.0")}
    assert len(sent) <= len(health.asked)  # every window at most once


async def test_desired_change_cancels_an_install_in_progress(tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    t = FakeTransport()
    agent = make_agent(tmp_path / "data", v["1.0"].policy_path, t)
    blocker = asyncio.Event()
    real = agent.deps.verifier.verify
    seen: list[str] = []

    async def slow(req):  # type: ignore[no-untyped-def]
        seen.append(req.version)
        if req.version == "1.0":
            await blocker.wait()
        return await real(req)

    agent.deps.verifier.verify = slow  # type: ignore[method-assign]
    agent.recover()
    agent.apply(DesiredState("gw-1", (desired(v["1.0"], "1.0"),)))
    await wait_until(lambda: seen == ["1.0"], "1.0 verifying")
    agent.apply(DesiredState("gw-1", (desired(v["2.0"], "2.0"),)))
    await agent.wait_idle()
    rec = agent.state.get("detector")
    assert (rec.version, rec.state) == ("2.0", ModelState.ACTIVE)


async def test_start_up_repairs_the_data_dir(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    v = versions(tmp_path, "1.0")
    data = tmp_path / "data"
    (data / "detector" / "slots" / "A" / "model").mkdir(parents=True)
    (data / "detector" / "active").symlink_to("slots/A")  # never verified
    agent = make_agent(data, v["1.0"].policy_path, FakeTransport())
    agent.recover()
    assert not (data / "detector" / "active").is_symlink()
    assert "gateway gw-1 model detector: recovery:" in caplog.text


@pytest.mark.parametrize("gateway", ["gw-1", "other-name"])
async def test_report_lists_every_known_model(tmp_path: Path, gateway: str) -> None:
    v = versions(tmp_path, "1.0")
    t = FakeTransport()
    agent = make_agent(tmp_path / "data", v["1.0"].policy_path, t)
    agent.recover()
    agent.apply(
        DesiredState(gateway, (desired(v["1.0"], "1.0"), desired(v["1.0"], "1.0", model="b")))
    )
    await agent.wait_idle()
    report = agent.build_report()
    assert [(m.model, m.state) for m in report.models] == [
        ("b", ModelState.ACTIVE),
        ("detector", ModelState.ACTIVE),
    ]


async def test_long_poll_asks_again_at_once_only_when_the_server_held_the_request(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    from modelfleet.agent.protocol import NotModified

    v = versions(tmp_path, "1.0")
    clock = FastClock()

    class Holding(FakeTransport):
        hold: float = 20.0

        async def get_desired(self, *, etag, wait):  # type: ignore[no-untyped-def]
            answer = await super().get_desired(etag=etag, wait=wait)
            if isinstance(answer, NotModified):
                clock.t += self.hold  # the server kept the request open
            return answer

    t = Holding(DesiredState("gw-1", (desired(v["1.0"], "1.0"),), 30.0, etag="1"))
    agent = make_agent(tmp_path / "data", v["1.0"].policy_path, t, clock=clock)
    agent.settings = replace(agent.settings, long_poll=30.0)  # type: ignore[misc]
    async with running(agent):
        await wait_until(lambda: len(t.etags_seen) > 5, "long polls")
    assert clock.sleeps.count(30.0) <= 1  # held polls are followed by the next one at once
    t2 = Holding(DesiredState("gw-1", (desired(v["1.0"], "1.0"),), 30.0, etag="1"))
    t2.hold = 0.0  # a server that ignores ?wait= answers at once: no busy loop
    clock2 = FastClock()
    agent2 = make_agent(tmp_path / "data2", v["1.0"].policy_path, t2, clock=clock2)
    agent2.settings = replace(agent2.settings, long_poll=30.0)  # type: ignore[misc]
    async with running(agent2):
        await wait_until(lambda: len(t2.etags_seen) > 3, "polls")
    assert 30.0 in clock2.sleeps


async def test_reports_are_numbered_one_higher_only_after_a_promised_write(tmp_path: Path) -> None:
    """The report sequence: one random session per agent process; the number goes up once the
    fleet API answered written: true, and a report answered written: false or not answered at
    all is sent again with the same number (the fleet API waits for promised numbers only)."""
    v = versions(tmp_path, "1.0")
    t = FakeTransport(DesiredState("gw-1", (desired(v["1.0"], "1.0"),), etag="1"))
    agent = make_agent(tmp_path / "data", v["1.0"].policy_path, t)
    t.written = True
    await agent.report_once()
    await agent.report_once()
    t.written = False
    await agent.report_once()
    t.offline = True
    with pytest.raises(FleetError):
        await agent.report_once()
    t.offline, t.written = False, True
    await agent.report_once()
    await agent.report_once()
    numbers = [r.sequence[1] for r in t.reports if r.sequence is not None]
    assert numbers == [1, 2, 3, 3, 4]
    assert len({r.sequence[0] for r in t.reports if r.sequence is not None}) == 1
    other = make_agent(tmp_path / "data2", v["1.0"].policy_path, t)
    await other.report_once()
    first, last = t.reports[0].sequence, t.reports[-1].sequence
    assert first is not None and last is not None
    assert last[0] != first[0] and last[1] == 1  # another process: another session, from 1


class PatientClock(FastClock):
    """Polls and retries (whatever their backoff) go on at once; the report interval (60 s,
    exactly) never passes by itself."""

    async def sleep(self, seconds: float) -> None:
        if seconds == 60:
            await asyncio.Event().wait()
        await super().sleep(seconds)


async def test_the_report_is_sent_again_at_once_after_the_fleet_api_came_back(
    tmp_path: Path,
) -> None:
    """The replica that accepted the last report may have died before its write: once a poll
    fails and a later one succeeds, the agent reports again without waiting its interval."""
    v = versions(tmp_path, "1.0")
    t = FakeTransport(DesiredState("gw-1", (desired(v["1.0"], "1.0"),), etag="1"))
    agent = make_agent(tmp_path / "data", v["1.0"].policy_path, t, clock=PatientClock())
    async with running(agent):
        await wait_until(lambda: last_state(t) == ("1.0", "Active"), "1.0 Active")
        await wait_until(lambda: agent.online, "online")
        await asyncio.sleep(0.05)  # the report loop now waits its interval
        t.offline = True
        await wait_until(lambda: not agent.online, "the poll failed")
        sent = len(t.reports)
        t.offline = False
        await wait_until(lambda: len(t.reports) > sent, "a report after reconnecting")

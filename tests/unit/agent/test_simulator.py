"""The simulator: N real agents in one process over mTLS, with injected per-version behaviour."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modelfleet.agent.behaviour import BehaviourTable, parse_behaviour
from modelfleet.agent.protocol import DesiredState, NotModified
from modelfleet.agent.runtime import AgentRuntime
from modelfleet.agent.simulator import Simulation, SimulationOptions, load_bundles
from modelfleet.errors import ConfigError

from .fleetstub import FleetStub, start_stub
from .helpers import versions


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[FleetStub]:
    async for s in start_stub(tmp_path):
        yield s


def options(**kw: object) -> SimulationOptions:
    base: dict[str, object] = {"poll_interval": 0.1, "report_interval": 0.3, "window_seconds": 0.2}
    return SimulationOptions(**{**base, **kw})  # type: ignore[arg-type]


async def test_one_real_agent_installs_over_mtls(stub: FleetStub, tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0")
    config = stub.enroll("gw-0", v["1.0"].policy_path)
    stub.set_desired(stub.desired_model(v["1.0"], "1.0"))
    async with AgentRuntime(config) as agent:
        agent.recover()
        first = await agent.poll_once(None)
        await agent.wait_idle()
        await agent.report_once()
        assert isinstance(first, DesiredState)
        again = await agent.poll_once(first.etag)
    assert stub.last_states() == {"gw-0": ("1.0", "Active")}
    assert isinstance(again, NotModified)
    assert (config.data_dir / "detector" / "active" / "model" / "detector-1.0").is_file()


async def test_unknown_certificate_is_refused(stub: FleetStub, tmp_path: Path) -> None:
    v = versions(tmp_path, "1.0")
    config = stub.enroll("gw-0", v["1.0"].policy_path)
    stub.identities.clear()  # revoked
    from modelfleet.agent.transport import FleetError

    async with AgentRuntime(config) as agent:
        with pytest.raises(FleetError, match="HTTP 403") as info:
            await agent.poll_once(None)
    assert not info.value.transient


async def test_simulated_fleet_converges_and_failures_roll_back(
    stub: FleetStub, tmp_path: Path
) -> None:
    v = versions(tmp_path, "1.0", "2.0")
    configs = [stub.enroll(f"sim-{i:02d}", v["1.0"].policy_path) for i in range(12)]
    assert [c.gateway for c in load_bundles(tmp_path / "bundles")] == [c.gateway for c in configs]
    table = parse_behaviour({"2.0": {"activationFailureRate": 0.5, "errorRate": 0.2}})
    stub.set_desired(stub.desired_model(v["1.0"], "1.0"))
    async with Simulation(configs, options(behaviour=table, seed=7)) as sim:
        snap = await sim.run(
            30, until=lambda s: s.counts.get(("detector", "1.0", "Active"), 0) == 12
        )
        assert snap.counts == {("detector", "1.0", "Active"): 12}
        stub.set_desired(stub.desired_model(v["2.0"], "2.0"))

        def settled(s: object) -> bool:
            counts = sim.snapshot().counts
            return sum(n for (_, ver, st), n in counts.items() if ver == "2.0" and st in
                       ("Active", "RolledBack")) == 12  # fmt: skip

        snap = await sim.run(30, until=settled)
        await sim.run(30, until=lambda _: stub.not_modified > 0)  # polls carry the ETag
        assert sim.cache is not None
        misses, hits = sim.cache.misses, sim.cache.hits
    rolled = snap.counts.get(("detector", "2.0", "RolledBack"), 0)
    assert 0 < rolled < 12
    assert snap.counts.get(("detector", "2.0", "Active"), 0) == 12 - rolled
    assert misses == 2 and hits == 22  # one full verification per version, shared
    # each rolled-back gateway runs 1.0 again, through its own slots
    for c in configs:
        marker = (c.data_dir / "detector" / "active" / ".verified").read_text()
        assert ('"1.0"' in marker) == (
            sim.agents[configs.index(c)].state.get("detector").state.value == "RolledBack"
        )
    health = [h for reports in stub.reports.values() for r in reports for h in r["health"]]
    assert health and all(h["errors"] <= h["requests"] for h in health)


async def test_offline_gateways_keep_their_model_and_do_not_report(
    stub: FleetStub, tmp_path: Path
) -> None:
    v = versions(tmp_path, "1.0")
    configs = [stub.enroll(f"sim-{i}", v["1.0"].policy_path) for i in range(3)]
    stub.set_desired(stub.desired_model(v["1.0"], "1.0"))
    async with Simulation(configs, options(offline_fraction=1.0)) as sim:
        snap = await sim.run(1.0)
    assert snap.online == 0 and stub.reports == {} and stub.polls == 0


def test_behaviour_defaults_and_overrides() -> None:
    table = parse_behaviour(
        {"*": {"errorRate": 0.01, "latencyMs": {"p50": 10, "p95": 30}}, "2": {"errorRate": 0.5}}
    )
    assert table.for_version("1").error_rate == 0.01
    b2 = table.for_version("2")
    assert (b2.error_rate, b2.latency_p50_ms, b2.latency_p95_ms) == (0.5, 10, 30)
    assert parse_behaviour(None) == BehaviourTable()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"2": {"errorRat": 0.1}}, "unknown field 'errorRat'"),
        ({"2": {"errorRate": 2}}, "between 0 and 1"),
        ({"2": {"latencyMs": {"p50": 50, "p95": 10}}}, "p95 is below p50"),
        (["x"], "expected a mapping"),
    ],
)
def test_bad_behaviour_is_named(doc: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_behaviour(doc)


def test_no_bundles_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no \*/agent.yaml"):
        load_bundles(tmp_path)


def test_background_simulation_for_synchronous_callers(tmp_path: Path) -> None:
    import asyncio
    import threading

    from modelfleet.agent.simulator import BackgroundSimulation

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, FleetStub] = {}
    stop = asyncio.Event()

    async def serve() -> None:
        async for s in start_stub(tmp_path):
            holder["stub"] = s
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    stub = holder["stub"]
    v = versions(tmp_path, "1.0")
    configs = [stub.enroll(f"bg-{i}", v["1.0"].policy_path) for i in range(3)]
    stub.set_desired(stub.desired_model(v["1.0"], "1.0"))
    try:
        with BackgroundSimulation(configs, options()) as sim:
            snap = sim.wait_until(lambda s: s.counts.get(("detector", "1.0", "Active")) == 3, 60)
        assert snap.online == 3
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


async def test_synthetic_activation_failures_hit_the_configured_share_reproducibly() -> None:
    from modelfleet.agent.behaviour import SyntheticHealthCheck
    from modelfleet.agent.healthcheck import HealthTarget

    from .helpers import FastClock

    table = parse_behaviour({"2.0": {"activationFailureRate": 0.25}})
    target = HealthTarget("detector", "2.0", "sha256:" + "0" * 64, Path("/x"))

    async def failures(seed: int) -> list[int]:
        out = []
        for i in range(400):
            check = SyntheticHealthCheck(f"gw-{i}", table, FastClock(), seed)
            if not (await check.check(target)).ok:
                out.append(i)
        return out

    first = await failures(1)
    assert 60 < len(first) < 140  # about a quarter of 400
    assert first == await failures(1)  # the same gateways fail every time
    assert first != await failures(2)
    ok = await SyntheticHealthCheck("gw-0", table, FastClock(), 1).check(
        HealthTarget("detector", "1.0", "sha256:" + "0" * 64, Path("/x"))
    )
    assert ok.ok  # other versions use the default behaviour: no failures


async def test_synthetic_health_windows_follow_the_behaviour() -> None:
    from modelfleet.agent.behaviour import SyntheticHealthSource
    from modelfleet.agent.telemetry import RunningModel

    from .helpers import FastClock

    table = parse_behaviour(
        {"2.0": {"errorRate": 0.1, "requestsPerSecond": 20, "latencyMs": {"p50": 30, "p95": 90},
                 "driftScore": 0.4}}
    )  # fmt: skip
    clock = FastClock()
    source = SyntheticHealthSource("gw-0", table, clock, 0)
    running = [RunningModel("detector", "2.0")]
    assert await source.sample(running) == []  # the first call starts the window
    windows = []
    for _ in range(20):
        clock.t += 60
        windows += await source.sample(running)
    requests = sum(w.requests for w in windows)
    errors = sum(w.errors for w in windows)
    assert 20 * 60 * 20 * 0.9 < requests < 20 * 60 * 20 * 1.1
    assert 0.08 < errors / requests < 0.12
    assert all(w.latency_p50_ms <= w.latency_p95_ms for w in windows)  # type: ignore[operator]
    assert all(0.3 < (w.drift_score or 0) < 0.5 for w in windows)


async def test_a_warming_up_version_sends_no_health_window_until_its_warmup_has_passed() -> None:
    from modelfleet.agent.behaviour import SyntheticHealthSource
    from modelfleet.agent.telemetry import RunningModel

    from .helpers import FastClock

    table = parse_behaviour({"2.0": {"warmupSeconds": 10, "requestsPerSecond": 20}})
    clock = FastClock()
    source = SyntheticHealthSource("gw-0", table, clock, 0)
    old, new = [RunningModel("detector", "1.0")], [RunningModel("detector", "2.0")]
    assert await source.sample(old) == []
    clock.t += 4
    assert [w.version for w in await source.sample(old)] == ["1.0"]  # no warmup for 1.0
    for _ in range(2):  # 2.0 activated: 0 and 4 seconds into its warmup
        assert await source.sample(new) == []
        clock.t += 4
    clock.t += 4  # 12 seconds after 2.0 started running
    assert [w.version for w in await source.sample(new)] == ["2.0"]
    clock.t += 4  # back to 1.0, which has no warmup: a window at once
    assert [w.version for w in await source.sample(old)] == ["1.0"]

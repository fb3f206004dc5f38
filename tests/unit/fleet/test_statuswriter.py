"""Status writes with several replicas: planned on a confirmed copy, guarded by resourceVersion.

The API server here is a scripted stand-in (merge patch of status, 409 on a stale
resourceVersion); the real race with two fleet API processes is in
tests/integration/test_fleet_replicas.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from modelfleet.api import parse_release
from modelfleet.fleet.coalesce import CoalescePolicy, format_time
from modelfleet.fleet.index import FleetIndex
from modelfleet.fleet.metrics import FleetMetrics
from modelfleet.fleet.statuswriter import StatusWriter
from modelfleet.kube import ApiError
from modelfleet.protocol import ModelReport, Report

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
FP = "sha256:" + "1" * 64
POLICY = CoalescePolicy()


def model_status(state: str, since: dt.datetime = T0) -> dict[str, Any]:
    return {"model": "m", "version": "1", "digest": "sha256:" + "a" * 64, "slot": "A",
            "state": state, "message": "", "since": format_time(since)}  # fmt: skip


def report(state: str) -> Report:
    m = ModelReport(model="m", version="1", digest="sha256:" + "a" * 64, slot="A", state=state)
    return Report(agent_version="0.1.0", models=(m,))


class Server:
    """One EdgeGateway; merge patches of status with the resourceVersion precondition."""

    def __init__(self, state: str, rv: int = 10) -> None:
        self.rv = rv
        self.status: dict[str, Any] = {
            "lastSeen": format_time(T0), "agentVersion": "0.1.0", "models": [model_status(state)]
        }  # fmt: skip
        self.gets = 0
        self.patches: list[dict[str, Any]] = []

    def obj(self) -> dict[str, Any]:
        meta = {"name": "gw", "namespace": "ns", "resourceVersion": str(self.rv)}
        return {"metadata": meta, "spec": {"certificateFingerprint": FP}, "status": self.status}

    def other_replica_writes(self, state: str, at: dt.datetime) -> None:
        self.status = {**self.status, "models": [model_status(state, at)],
                       "lastSeen": format_time(at)}  # fmt: skip
        self.rv += 1

    async def get(self, path: str) -> dict[str, Any]:
        self.gets += 1
        return self.obj()

    async def merge_patch_status(self, plural: str, ns: str, name: str, patch: dict[str, Any],
                                 *, resource_version: str | None = None) -> dict[str, Any]:  # fmt: skip
        if resource_version != str(self.rv):
            raise ApiError(409, "the object has been modified")
        self.patches.append(patch)
        self.status = {**self.status, **patch["status"]}
        self.rv += 1
        return self.obj()


def setup(server: Server) -> tuple[StatusWriter, FleetIndex]:
    index = FleetIndex(parse_release)
    index.upsert_gateway(server.obj())
    kube: Any = server
    return StatusWriter(index, kube, FleetMetrics(), policy=POLICY), index


async def apply(writer: StatusWriter, index: FleetIndex, state: str, at: dt.datetime) -> Any:
    entry = index.identify(FP)
    assert entry is not None
    return await writer.apply(entry, report(state), at, True)


async def test_a_report_matching_a_stale_copy_is_written_not_coalesced() -> None:
    server = Server("Active")
    writer, index = setup(server)
    server.other_replica_writes("Downloading", T0 + dt.timedelta(seconds=1))  # watch not seen
    patch = await apply(writer, index, "Active", T0 + dt.timedelta(seconds=2))
    assert patch is not None and "models" in patch.reasons
    assert server.status["models"][0]["state"] == "Active"
    assert server.gets == 1


async def test_a_write_planned_on_a_stale_copy_is_refused_and_planned_again() -> None:
    server = Server("Active")
    writer, index = setup(server)
    server.other_replica_writes("Downloading", T0 + dt.timedelta(seconds=1))
    patch = await apply(writer, index, "Verifying", T0 + dt.timedelta(seconds=2))
    assert patch is not None
    assert server.status["models"][0]["state"] == "Verifying"
    assert len(server.patches) == 1 and server.gets == 1  # one refused, read, then written


async def test_a_report_is_not_written_over_one_received_later() -> None:
    server = Server("Active")
    writer, index = setup(server)
    server.other_replica_writes("Downloading", T0 + dt.timedelta(seconds=5))
    assert await apply(writer, index, "Verifying", T0 + dt.timedelta(seconds=2)) is None
    assert server.status["models"][0]["state"] == "Downloading"
    assert server.patches == []


async def test_a_confirmed_copy_coalesces_with_one_read() -> None:
    server = Server("Active")
    writer, index = setup(server)
    assert await apply(writer, index, "Active", T0 + dt.timedelta(seconds=2)) is None
    assert server.gets == 1 and server.patches == []


async def test_without_an_api_server_nothing_is_confirmed() -> None:
    index = FleetIndex(parse_release)
    index.upsert_gateway(Server("Active").obj())
    writer = StatusWriter(index, None, FleetMetrics(), policy=POLICY)
    assert await apply(writer, index, "Active", T0 + dt.timedelta(seconds=2)) is None

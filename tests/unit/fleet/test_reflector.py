"""List-then-watch mirroring: events apply in order, 410 Gone relists, outages mark staleness."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from modelfleet.api import parse_release
from modelfleet.fleet.index import FleetIndex
from modelfleet.kube import ApiError, Reflector, Sink, WatchExpired

FP = "sha256:" + "1" * 64


def gw(name: str, fp: str | None = FP, rv: str = "1") -> dict[str, Any]:
    spec = {"certificateFingerprint": fp} if fp else {}
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}, "spec": spec}


class FakeClient:
    """Scripted API server: each list returns the next item set; each watch plays a script."""

    def __init__(self, lists: list[list[dict[str, Any]]], watches: list[list[Any]]) -> None:
        self.lists = lists
        self.watches = watches
        self.listed = 0
        self.watched_from: list[str] = []
        self.done = asyncio.Event()

    async def list_all(self, path: str) -> tuple[list[dict[str, Any]], str]:
        self.listed += 1
        items = self.lists.pop(0)
        return items, f"list-{self.listed}"

    async def watch(self, path: str, rv: str) -> AsyncIterator[dict[str, Any]]:
        self.watched_from.append(rv)
        if not self.watches:
            self.done.set()
            await asyncio.Event().wait()
        for step in self.watches.pop(0):
            if isinstance(step, BaseException):
                raise step
            yield step


async def mirror(client: FakeClient, index: FleetIndex) -> Reflector:
    sink = Sink("edgegateways", index.replace_gateways, index.upsert_gateway, index.delete_gateway)
    reflector = Reflector(client, sink, "ns", max_staleness=60)  # type: ignore[arg-type]
    task = asyncio.create_task(reflector.run())
    await asyncio.wait_for(client.done.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return reflector


async def test_watch_events_apply_in_order() -> None:
    index = FleetIndex(parse_release)
    client = FakeClient(
        [[gw("a")]],
        [[{"type": "MODIFIED", "object": gw("a", None, "5")},
          {"type": "ADDED", "object": gw("b", "sha256:" + "2" * 64, "6")}]],
    )  # fmt: skip
    reflector = await mirror(client, index)
    assert index.identify(FP) is None  # revoked by the MODIFIED event
    assert index.identify("sha256:" + "2" * 64) is not None
    assert client.watched_from == ["list-1", "6"]  # resumes from the last resourceVersion
    assert reflector.healthy


async def test_a_410_relists_and_drops_what_was_deleted_meanwhile() -> None:
    index = FleetIndex(parse_release)
    client = FakeClient([[gw("a")], []], [[WatchExpired("gone")]])
    await mirror(client, index)
    assert client.listed == 2
    assert index.identify(FP) is None


async def test_an_outage_retries_from_the_same_resource_version() -> None:
    index = FleetIndex(parse_release)
    client = FakeClient([[gw("a")]], [[ApiError(0, "connection refused")]])
    reflector = await mirror(client, index)
    assert client.listed == 1 and client.watched_from == ["list-1", "list-1"]
    assert reflector.restarts == 1
    assert index.identify(FP) is not None  # still served, until max_staleness


async def test_nothing_is_healthy_before_the_first_list() -> None:
    client = FakeClient([], [])
    sink = Sink("edgegateways", lambda items: None, lambda o: None, lambda o: None)
    reflector = Reflector(client, sink, "ns")  # type: ignore[arg-type]
    assert not reflector.healthy

"""LeaderElector against an in-memory Lease store with resourceVersion checks (fast unit tests;
the evidence with real processes and a real API server is tests/integration/operator/
test_leader.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelfleet.controller.leader import LeaderElector, LeadershipLost, LeaseSettings
from modelfleet.kube import ApiError


class FakeLeases:
    """GET/POST/PUT of one Lease, with optimistic concurrency like the API server."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.version = 0
        self.writes = 0

    async def get(self, path: str) -> dict[str, Any]:
        if self.obj is None:
            raise ApiError(404, "not found")
        return copy.deepcopy(self.obj)

    async def request(self, method: str, path: str, *, body: Any, kind: str) -> dict[str, Any]:
        assert kind == "lease"
        self.writes += 1
        if method == "POST":
            if self.obj is not None:
                raise ApiError(409, "already exists")
        else:
            assert self.obj is not None
            if body["metadata"]["resourceVersion"] != self.obj["metadata"]["resourceVersion"]:
                raise ApiError(409, "conflict")
        self.version += 1
        self.obj = copy.deepcopy(body)
        self.obj["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.obj)

    @property
    def spec(self) -> dict[str, Any]:
        assert self.obj is not None
        return dict(self.obj["spec"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(store: FakeLeases, clock: Clock, who: str) -> LeaderElector:
    settings = LeaseSettings(name="l", namespace="ns", duration=15, identity=who)
    return LeaderElector(store, settings, clock=clock)  # type: ignore[arg-type]


async def test_the_first_candidate_creates_the_lease_and_the_second_waits() -> None:
    store, clock = FakeLeases(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert await a.try_acquire()
    assert store.spec["holderIdentity"] == "a" and store.spec["leaseTransitions"] == 0
    assert store.spec["leaseDurationSeconds"] == 15
    writes = store.writes
    assert not await b.try_acquire()
    assert store.writes == writes, "a candidate writes nothing while the lease is held"


async def test_a_candidate_takes_over_only_after_a_full_duration_without_change() -> None:
    store, clock = FakeLeases(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    await a.try_acquire()
    assert not await b.try_acquire()  # b starts counting now
    clock.now += 10
    assert await a.try_acquire()  # a renews: the record changes
    acquired = store.spec["acquireTime"]
    assert store.spec["acquireTime"] == acquired and store.spec["holderIdentity"] == "a"
    clock.now += 10
    assert not await b.try_acquire()  # b sees the renewal: it counts again from here
    clock.now += 14.9
    assert not await b.try_acquire()
    clock.now += 0.2
    assert await b.try_acquire()
    assert store.spec["holderIdentity"] == "b" and store.spec["leaseTransitions"] == 1


async def test_renewing_keeps_acquire_time_and_transitions() -> None:
    store, clock = FakeLeases(), Clock()
    a = elector(store, clock, "a")
    await a.try_acquire()
    first = store.spec
    clock.now += 5
    assert await a.try_acquire()
    assert store.spec["acquireTime"] == first["acquireTime"]
    assert store.spec["leaseTransitions"] == first["leaseTransitions"]


async def test_of_two_candidates_racing_for_an_expired_lease_one_wins() -> None:
    store, clock = FakeLeases(), Clock()
    a, b, c = (elector(store, clock, n) for n in "abc")
    await a.try_acquire()
    await b.try_acquire()
    await c.try_acquire()
    clock.now += 16
    # b and c both read the expired lease; b writes first, c's update is refused (409).
    original_get = store.get
    snapshot = await original_get("")

    async def stale_get(path: str) -> dict[str, Any]:
        return copy.deepcopy(snapshot)

    assert await b.try_acquire()
    store.get = stale_get  # type: ignore[method-assign]
    assert not await c.try_acquire()
    assert store.spec["holderIdentity"] == "b"


async def test_a_released_lease_is_taken_at_once() -> None:
    store, clock = FakeLeases(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    await a.try_acquire()
    assert not await b.try_acquire()
    await a.release()
    assert store.spec["holderIdentity"] == "" and store.spec["leaseDurationSeconds"] == 1
    assert a.renewed_at is None
    assert await b.try_acquire()  # no wait for expiry


async def test_release_leaves_a_lease_held_by_someone_else_alone() -> None:
    store, clock = FakeLeases(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    await a.try_acquire()
    assert not await b.try_acquire()
    clock.now += 16  # a stopped renewing
    assert await b.try_acquire()
    writes = store.writes
    await a.release()
    assert store.writes == writes and store.spec["holderIdentity"] == "b"


async def test_the_deadline_passes_when_no_renewal_succeeded_in_time() -> None:
    store, clock = FakeLeases(), Clock()
    a = elector(store, clock, "a")
    await a.try_acquire()
    clock.now += 9.9
    a._check_deadline()
    clock.now += 0.2
    with pytest.raises(LeadershipLost, match="not renewed for 10s"):
        a._check_deadline()


def test_timings_follow_the_duration() -> None:
    s = LeaseSettings(duration=15)
    assert (s.renew, s.renew_deadline, s.retry) == (5.0, 10.0, 2.0)
    assert (
        s.path
        == "/apis/coordination.k8s.io/v1/namespaces/modelfleet-system/leases/modelfleet-operator"
    )
    assert LeaseSettings().identity != LeaseSettings().identity

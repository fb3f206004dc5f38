"""Events for duplicate certificate fingerprints: each claimant is told who the others are."""

from __future__ import annotations

import datetime as dt
from typing import Any

from modelfleet.api import parse_release
from modelfleet.fleet.events import REASON_CONFLICT, REASON_RESOLVED, ConflictEvents
from modelfleet.fleet.index import FleetIndex

FP = "sha256:" + "7" * 64


def gateway(namespace: str, name: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}"},
        "spec": {"certificateFingerprint": FP},
    }


def test_a_conflict_and_its_resolution_are_told_to_each_object() -> None:
    events = ConflictEvents(None)
    index = FleetIndex(parse_release, on_claims_changed=events.claims_changed)
    events.index = index
    index.upsert_gateway(gateway("retail", "store-1"))
    index.upsert_gateway(gateway("other", "impostor"))
    index.delete_gateway(gateway("other", "impostor"))
    queued = [events._queue.get_nowait() for _ in range(events._queue.qsize())]
    assert [(e.namespace, e.name, e.reason) for e in queued] == [
        ("other", "impostor", REASON_CONFLICT),
        ("retail", "store-1", REASON_CONFLICT),
        ("retail", "store-1", REASON_RESOLVED),
    ]
    assert "retail/store-1" in queued[0].message and "other/impostor" in queued[1].message
    body = queued[1].body(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "replica-0")
    assert body["involvedObject"] == {
        "apiVersion": "modelfleet.dev/v1alpha1", "kind": "EdgeGateway",
        "namespace": "retail", "name": "store-1", "uid": "uid-store-1",
    }  # fmt: skip
    assert body["type"] == "Warning" and body["metadata"]["generateName"] == "store-1."

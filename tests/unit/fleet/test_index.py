"""The fleet API's index: identity by fingerprint, cached desired state with ETags, wake-ups."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelfleet.api import parse_release
from modelfleet.fleet.index import FleetIndex
from modelfleet.fleet.server import etag_matches

STABLE = "sha256:" + "a" * 64
TARGET = "sha256:" + "b" * 64
FP_A = "sha256:" + "1" * 64
FP_B = "sha256:" + "2" * 64


def release(step: int = 0, phase: str = "Progressing", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "detector", "namespace": "ns", "generation": 1},
        "spec": {
            "model": "detector",
            "version": "2.0.0",
            "artifact": {"uri": "https://m/2.0.0.tar", "digest": TARGET},
            "trustPolicy": "prod",
            "rollout": {
                "steps": [
                    {"name": "early", "selector": {"matchLabels": {"ring": "early"}}},
                    {"name": "fleet", "percent": 100},
                ]
            },
        },
        "status": {
            "phase": phase,
            "stable": {"version": "1.0.0", "digest": STABLE, "uri": "https://m/1.0.0.tar",
                       "signature": "https://m/1.0.0.sig"},
            "target": {"version": "2.0.0", "digest": TARGET, "uri": "https://m/2.0.0.tar",
                       "attestations": ["https://m/2.0.0.prov"]},
            "rollout": {"step": step},
            **status,
        },
    }  # fmt: skip


def gateway(name: str, fp: str | None, **labels: str) -> dict[str, Any]:
    spec = {"certificateFingerprint": fp} if fp else {}
    return {"metadata": {"name": name, "namespace": "ns", "labels": labels}, "spec": spec}


@pytest.fixture
def index() -> FleetIndex:
    idx = FleetIndex(parse_release)
    idx.replace_releases([release()])
    idx.replace_gateways([gateway("a", FP_A, ring="early"), gateway("b", FP_B)])
    return idx


def models(idx: FleetIndex, fp: str) -> list[dict[str, Any]]:
    import json

    entry = idx.identify(fp)
    assert entry is not None
    return json.loads(idx.desired(entry).models_json)  # type: ignore[no-any-return]


def test_a_certificate_identifies_its_gateway(index: FleetIndex) -> None:
    entry = index.identify(FP_A)
    assert entry is not None and entry.name == "a"
    assert index.identify("sha256:" + "9" * 64) is None


def test_removing_the_fingerprint_revokes_at_once(index: FleetIndex) -> None:
    index.upsert_gateway(gateway("a", None, ring="early"))
    assert index.identify(FP_A) is None


def test_changing_the_fingerprint_revokes_the_old_one(index: FleetIndex) -> None:
    new = "sha256:" + "3" * 64
    index.upsert_gateway(gateway("a", new, ring="early"))
    assert index.identify(FP_A) is None
    assert index.identify(new) is not None


def test_deleting_the_gateway_revokes_it(index: FleetIndex) -> None:
    index.delete_gateway(gateway("a", FP_A))
    assert index.identify(FP_A) is None


def test_a_relist_drops_gateways_that_are_gone(index: FleetIndex) -> None:
    index.replace_gateways([gateway("b", FP_B)])
    assert index.identify(FP_A) is None and index.identify(FP_B) is not None


def test_a_shared_fingerprint_identifies_nobody(index: FleetIndex) -> None:
    index.upsert_gateway(gateway("c", FP_B))
    assert index.identify(FP_B) is None


def test_cohorts_decide_target_or_stable(index: FleetIndex) -> None:
    (a,) = models(index, FP_A)
    (b,) = models(index, FP_B)
    assert (a["version"], a["step"], a["attestations"]) == (
        "2.0.0", 0, [{"uri": "https://m/2.0.0.prov"}],
    )  # fmt: skip
    assert (b["version"], b["signature"]) == ("1.0.0", {"uri": "https://m/1.0.0.sig"})
    assert a["artifact"] == {"uri": "https://m/2.0.0.tar"} and a["release"] == "detector"


def test_no_stable_means_no_instruction(index: FleetIndex) -> None:
    doc = release(phase="Verifying")
    del doc["status"]["stable"]
    index.upsert_release(doc)
    assert models(index, FP_B) == []


def test_the_etag_changes_with_the_desired_state_only(index: FleetIndex) -> None:
    entry = index.identify(FP_B)
    assert entry is not None
    first = index.desired(entry).etag
    index.upsert_release(release(step=0, message="gates evaluated"))
    assert index.desired(entry).etag == first
    index.upsert_release(release(step=1))
    assert index.desired(entry).etag != first


def test_a_status_only_change_keeps_the_cache(index: FleetIndex) -> None:
    entry = index.identify(FP_B)
    assert entry is not None
    cached = index.desired(entry)
    doc = release()
    doc["status"]["rollout"]["cohorts"] = [{"name": "early", "assigned": 1}]
    index.upsert_release(doc)
    assert index.desired(entry) is cached


def test_a_label_change_moves_the_gateway_into_the_cohort(index: FleetIndex) -> None:
    index.upsert_gateway(gateway("b", FP_B, ring="early"))
    assert models(index, FP_B)[0]["version"] == "2.0.0"


def test_a_status_write_of_the_gateway_keeps_its_cache(index: FleetIndex) -> None:
    entry = index.identify(FP_B)
    assert entry is not None
    cached = index.desired(entry)
    doc = gateway("b", FP_B)
    doc["status"] = {"lastSeen": "2026-01-01T00:00:00Z"}
    index.upsert_gateway(doc)
    new_entry = index.identify(FP_B)
    assert new_entry is not None and index.desired(new_entry) is cached
    assert new_entry.status["lastSeen"] == "2026-01-01T00:00:00Z"


def test_an_unreadable_release_covers_no_gateway(index: FleetIndex) -> None:
    bad = release()
    bad["spec"]["rollout"]["steps"] = "nonsense"
    index.upsert_release(bad)
    assert models(index, FP_A) == []


async def test_a_release_change_wakes_long_polls_of_the_namespace(index: FleetIndex) -> None:
    a, b = index.change_future(("ns", "a")), index.change_future(("ns", "b"))
    elsewhere = index.change_future(("other", "c"))
    index.upsert_release(release(step=1))
    await asyncio.sleep(0)
    assert a.done() and b.done() and not elsewhere.done()


async def test_a_revocation_wakes_the_gateways_long_poll(index: FleetIndex) -> None:
    a, b = index.change_future(("ns", "a")), index.change_future(("ns", "b"))
    index.upsert_gateway(gateway("a", None, ring="early"))
    assert a.done() and not b.done()


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        ('W/"abc"', True),
        ('"abc"', True),
        ('"x", W/"abc"', True),
        ("*", True),
        ('W/"abd"', False),
    ],
)
def test_if_none_match_uses_weak_comparison(header: str | None, matches: bool) -> None:
    assert etag_matches(header, 'W/"abc"') is matches


async def test_closing_wakes_every_long_poll_for_good(index: FleetIndex) -> None:
    a, b = index.change_future(("ns", "a")), index.change_future(("other", "b"))
    index.wake_all(closing=True)
    assert a.done() and b.done() and index.closing


# ----------------------------------------------------------------------------- fingerprint squatting


def _squatter(namespace: str, name: str, fp: str) -> dict[str, Any]:
    doc = gateway(name, fp)
    doc["metadata"]["namespace"] = namespace
    return doc


def test_a_duplicate_in_another_namespace_refuses_both_and_its_deletion_restores_at_once() -> None:
    changes: list[tuple[str, frozenset[Any], frozenset[Any]]] = []
    index = FleetIndex(parse_release, on_claims_changed=lambda *c: changes.append(c))
    index.upsert_gateway(gateway("a", FP_A))
    real = index.identify(FP_A)
    assert real is not None
    index.upsert_gateway(_squatter("elsewhere", "squat", FP_A))
    assert index.identify(FP_A) is None
    assert index.claimants(FP_A) == (("elsewhere", "squat"), (real.namespace, "a"))
    assert index.conflicts() == {FP_A: index.claimants(FP_A)}
    index.delete_gateway(_squatter("elsewhere", "squat", FP_A))
    assert index.identify(FP_A) is real and index.conflicts() == {}
    assert [len(after) for _, _, after in changes] == [2, 1]


def test_a_duplicate_that_changes_its_fingerprint_releases_the_real_one() -> None:
    index = FleetIndex(parse_release)
    index.upsert_gateway(gateway("a", FP_A))
    index.upsert_gateway(_squatter("elsewhere", "squat", FP_A))
    index.upsert_gateway(_squatter("elsewhere", "squat", FP_B))
    assert index.identify(FP_A) is not None and index.identify(FP_B) is not None


def test_a_relist_resolves_duplicates_from_the_objects_as_they_are() -> None:
    index = FleetIndex(parse_release)
    index.upsert_gateway(gateway("a", FP_A))
    index.upsert_gateway(_squatter("elsewhere", "squat", FP_A))
    index.replace_gateways([gateway("a", FP_A)])  # the squatter went while the watch was down
    assert index.identify(FP_A) is not None


def test_three_claimants_stay_refused_until_one_is_left() -> None:
    index = FleetIndex(parse_release)
    for ns in ("x", "y", "z"):
        index.upsert_gateway(_squatter(ns, "g", FP_A))
    index.delete_gateway(_squatter("x", "g", FP_A))
    assert index.identify(FP_A) is None
    index.delete_gateway(_squatter("y", "g", FP_A))
    entry = index.identify(FP_A)
    assert entry is not None and entry.namespace == "z"

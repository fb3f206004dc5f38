"""The Reconciler's I/O discipline, against an in-memory API server (:class:`FakeKube`).

What is decided is ``core.decide``'s business (tested as tables in tests/unit/core); these tests
are about how the Reconciler applies it: verify before deciding, one conditional status write,
no write when nothing changed, a 409 read again and decided again (at most three times), other
API errors raised, a slow verification shown as Verifying, a spec changed during verification
verified again, Events only once the status is stored.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from modelfleet.controller import reconcile as reconcile_module
from modelfleet.controller.reconcile import Reconciler
from modelfleet.core import Verification
from modelfleet.core.decision import FleetView
from modelfleet.kube import ApiError

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "b" * 64


def release_body(generation: int = 1, version: str = "1.0.0") -> dict[str, Any]:
    """A ModelRelease as the API server returns it, never reconciled."""
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "ModelRelease",
        "metadata": {
            "name": "detector", "namespace": "retail", "uid": "uid-1",
            "generation": generation, "resourceVersion": "1",
        },
        "spec": {
            "model": "detector", "version": version,
            "artifact": {"uri": "https://models.example.com/detector.tar", "digest": DIGEST,
                         "signature": {"uri": "https://models.example.com/detector.sig"}},
            "trustPolicy": "prod-signers",
            "rollout": {"steps": [{"name": "fleet", "percent": 100}]},
        },
    }  # fmt: skip


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


@dataclass
class FakeKube:
    """One ModelRelease in memory: ``get`` and ``merge_patch_status`` as the API server answers them,
    with the ``resourceVersion`` precondition (409 when stale)."""

    obj: dict[str, Any]
    patches: list[dict[str, Any]] = field(default_factory=list)
    """Every status patch asked for (also the refused ones)."""
    fail_with: int | None = None
    """Answer every patch with this status instead."""
    interfere: int = 0
    """How many of the next patches find the object changed by someone else first."""
    deleted: bool = False

    async def get(self, path: str) -> dict[str, Any]:
        if self.deleted:
            raise ApiError(404, f"{path} not found")
        assert path.endswith("/namespaces/retail/modelreleases/detector"), path
        return copy.deepcopy(self.obj)

    async def merge_patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str | None = None,
        kind: str = "status",
    ) -> dict[str, Any]:
        assert (plural, namespace, name) == ("modelreleases", "retail", "detector")
        self.patches.append(copy.deepcopy(dict(patch)))
        if self.fail_with is not None:
            raise ApiError(self.fail_with, "refused")
        if self.interfere:
            self.interfere -= 1
            self.bump()
        wanted = (patch.get("metadata") or {}).get("resourceVersion") or resource_version
        if wanted is not None and wanted != self.obj["metadata"]["resourceVersion"]:
            raise ApiError(409, "the object has been modified")
        merge(self.obj.setdefault("status", {}), patch["status"])
        self.bump()
        return copy.deepcopy(self.obj)

    def bump(self) -> None:
        meta = self.obj["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)


@dataclass
class FakeVerifier:
    """Accepts every artifact (after ``delay`` seconds); counts the calls."""

    delay: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)
    during: Any = None
    """Called once while the first verification runs (to change the object meanwhile)."""

    async def verify(
        self, spec: Any, where: str, *, namespace: str, revoked_models: Any = None
    ) -> Verification:
        self.calls.append((spec.version, where))
        if self.during is not None:
            during, self.during = self.during, None
            during()
        await asyncio.sleep(self.delay)
        return Verification(
            verified=True, digest=spec.digest, authority="release-key", signer="sha256:k", at=NOW
        )


class NoSources:
    """No Git source known: the release's own ``status.source`` stands."""

    async def lookup(self, body: Mapping[str, Any], fallback: Any) -> Any:
        return fallback

    def forget(self, uid: str) -> None:
        pass


@dataclass
class Setup:
    kube: FakeKube
    verifier: FakeVerifier
    events: list[tuple[str, str, str]]
    reconciler: Reconciler

    async def reconcile(self, body: Mapping[str, Any] | None = None) -> None:
        await self.reconciler.reconcile(
            body if body is not None else self.kube.obj, lambda ns: FleetView(), trigger="test"
        )

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.kube.obj.get("status") or {})


def setup(body: dict[str, Any] | None = None, *, delay: float = 0.0) -> Setup:
    kube = FakeKube(body or release_body())
    verifier = FakeVerifier(delay=delay)
    events: list[tuple[str, str, str]] = []

    def post(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        # an Event names the stored object: the write has happened
        assert (obj.get("status") or {}).get("phase"), "event before the status was stored"
        events.append((type_, reason, message))

    reconciler = Reconciler(kube, verifier, NoSources(), post, clock=lambda: NOW)  # type: ignore[arg-type]
    return Setup(kube, verifier, events, reconciler)


async def test_a_new_release_is_verified_then_written_once_with_a_precondition() -> None:
    s = setup()
    await s.reconcile()
    assert s.verifier.calls == [("1.0.0", "ModelRelease retail/detector")]
    assert len(s.kube.patches) == 1
    patch = s.kube.patches[0]
    assert patch["metadata"] == {"resourceVersion": "1"}
    assert s.status["observedGeneration"] == 1
    assert s.status["verification"]["verified"] is True
    assert s.status["phase"] != "Verifying"
    assert s.events, "a phase change is an Event"


async def test_deciding_again_on_the_written_object_writes_nothing() -> None:
    s = setup()
    await s.reconcile()
    before = (len(s.kube.patches), len(s.events), len(s.verifier.calls))
    await s.reconcile()
    await s.reconcile(release_body())  # kopf's older copy: the one written last is newer
    assert (len(s.kube.patches), len(s.events), len(s.verifier.calls)) == before


async def test_a_conflict_is_read_again_and_decided_again() -> None:
    s = setup()
    s.kube.interfere = 1
    await s.reconcile()
    assert len(s.kube.patches) == 2
    assert s.kube.patches[1]["metadata"]["resourceVersion"] == "2", "the fresh copy's version"
    assert s.status["observedGeneration"] == 1
    assert len(s.verifier.calls) == 1, "the verification of that generation is reused"


async def test_a_release_that_keeps_changing_is_tried_three_times_then_left_to_the_timer() -> None:
    s = setup()
    s.kube.interfere = 10
    await s.reconcile()
    assert len(s.kube.patches) == reconcile_module.MAX_ATTEMPTS == 3
    assert "status" not in s.kube.obj
    assert s.events == []


async def test_other_api_errors_reach_the_caller_and_post_no_event() -> None:
    s = setup()
    s.kube.fail_with = 500
    with pytest.raises(ApiError) as err:
        await s.reconcile()
    assert err.value.status == 500
    assert s.events == []


async def test_a_slow_verification_is_shown_as_verifying_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reconcile_module, "SHOW_VERIFYING_AFTER", 0.01)
    s = setup(delay=0.1)
    await s.reconcile()
    phases = [p["status"].get("phase") for p in s.kube.patches]
    assert phases[0] == "Verifying"
    assert s.status["phase"] != "Verifying"
    assert len(s.verifier.calls) == 1


async def test_a_spec_changed_during_verification_is_verified_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reconcile_module, "SHOW_VERIFYING_AFTER", 0.01)
    s = setup(delay=0.05)

    def new_spec() -> None:
        s.kube.obj["spec"]["version"] = "1.0.1"
        s.kube.obj["metadata"]["generation"] = 2
        s.kube.bump()

    s.verifier.during = new_spec
    await s.reconcile(release_body())
    assert [v for v, _ in s.verifier.calls] == ["1.0.0", "1.0.1"]
    assert s.status["observedGeneration"] == 2


async def test_refreshing_a_deleted_release_does_nothing() -> None:
    s = setup()
    s.kube.deleted = True
    await s.reconciler.refresh("retail", "detector", lambda ns: FleetView())
    assert s.kube.patches == [] and s.verifier.calls == []


async def test_a_running_reconciliation_is_busy_and_a_forgotten_release_starts_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = setup(delay=0.05)
    task = asyncio.ensure_future(s.reconcile())
    await asyncio.sleep(0.01)
    assert s.reconciler.busy("uid-1")
    await task
    assert not s.reconciler.busy("uid-1")
    s.reconciler.forget("uid-1")
    s.kube.obj.pop("status")
    await s.reconcile()
    assert len(s.verifier.calls) == 2, "nothing remembered after forget()"

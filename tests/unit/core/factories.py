"""Factories for core views: releases, statuses and gateways, without YAML blobs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from modelfleet.core import (
    Action,
    ActionKind,
    Gates,
    Gateway,
    HealthReport,
    LabelSelector,
    ModelState,
    ModelStateKind,
    Phase,
    Release,
    ReleaseSpec,
    ReleaseStatus,
    RollbackMode,
    RolloutStatus,
    Step,
    Verification,
    VersionSnapshot,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
NS = "retail"
MODEL = "detector"


def digest(version: str) -> str:
    """A stable fake sha256 digest per version."""
    import hashlib

    return "sha256:" + hashlib.sha256(version.encode()).hexdigest()


def snap(version: str, *, since: datetime | None = None) -> VersionSnapshot:
    return VersionSnapshot(
        version=version,
        digest=digest(version),
        uri=f"https://models.example.com/{MODEL}/{version}/model.tar",
        signature=f"https://models.example.com/{MODEL}/{version}/model.sig",
        since=since,
    )


DEFAULT_STEPS = (
    Step("canary", percent=5, bake=timedelta(minutes=10)),
    Step("early", selector=LabelSelector.of({"ring": "early"}), bake=timedelta(minutes=30)),
    Step("fleet", percent=100),
)


def spec(version: str = "2.0.0", **kw: Any) -> ReleaseSpec:
    s = snap(version)
    fields: dict[str, Any] = {
        "model": MODEL,
        "version": version,
        "digest": s.digest,
        "uri": s.uri,
        "signature": s.signature,
        "trust_policy": "prod-signers",
        "steps": DEFAULT_STEPS,
        "gates": Gates(max_failed_gateways=0, min_reporting_ratio=0.9, min_requests=0),
        "rollback": RollbackMode.IMMEDIATE,
    }
    fields.update(kw)
    return ReleaseSpec(**fields)


def release(
    version: str = "2.0.0",
    *,
    name: str = "detector",
    namespace: str = NS,
    status: ReleaseStatus | None = None,
    generation: int = 1,
    action: tuple[str, str] | None = None,
    **spec_kw: Any,
) -> Release:
    return Release(
        name=name,
        namespace=namespace,
        spec=spec(version, **spec_kw),
        status=status or ReleaseStatus(),
        generation=generation,
        action=None if action is None else Action(ActionKind(action[0]), action[1]),
    )


def rolling(
    target: str = "2.0.0",
    stable: str | None = "1.0.0",
    *,
    phase: Phase = Phase.PROGRESSING,
    step: int = 0,
    started: datetime = T0,
    **rollout_kw: Any,
) -> ReleaseStatus:
    return ReleaseStatus(
        phase=phase,
        observed_generation=1,
        stable=None if stable is None else snap(stable, since=T0 - timedelta(days=1)),
        target=snap(target, since=started),
        rollout=RolloutStatus(step=step, step_started_at=started, **rollout_kw),
    )


def settled(stable: str = "1.0.0") -> ReleaseStatus:
    return ReleaseStatus(
        phase=Phase.SUCCEEDED,
        observed_generation=1,
        stable=snap(stable, since=T0 - timedelta(days=1)),
        rollout=RolloutStatus(step=2),
    )


def verified(version: str = "2.0.0", *, at: datetime = T0) -> Verification:
    return Verification(verified=True, digest=digest(version), authority="prod", at=at)


def refused(version: str = "2.0.0", *, at: datetime = T0) -> Verification:
    return Verification(
        verified=False, digest=digest(version), reason="signature does not verify", at=at
    )


def gateway(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    namespace: str = NS,
    running: str | None = None,
    state: ModelStateKind = ModelStateKind.ACTIVE,
    requests: int = 1000,
    errors: int = 0,
    p95: float = 50.0,
    drift: float = 0.0,
    seen: datetime | None = T0,
    report_at: datetime | None = None,
    health: bool = True,
) -> Gateway:
    """A gateway; ``running`` is the version it reports (with health for it when ``health``)."""
    models = {}
    reports: tuple[HealthReport, ...] = ()
    if running is not None:
        models[MODEL] = ModelState(MODEL, running, digest(running), state)
        if health and state is ModelStateKind.ACTIVE:
            reports = (
                HealthReport(
                    MODEL,
                    running,
                    window=timedelta(minutes=5),
                    window_end=report_at or seen,
                    requests=requests,
                    errors=errors,
                    latency_p95_ms=p95,
                    drift_score=drift,
                ),
            )
    return Gateway(
        name=name,
        namespace=namespace,
        labels=labels or {},
        models=models,
        health=reports,
        last_seen=seen,
    )


def with_status(r: Release, status: ReleaseStatus) -> Release:
    return replace(r, status=status)

"""Test doubles for the agent's injectable parts, and factories for signed desired models."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from modelfleet.agent.core import AgentDeps, AgentSettings, GatewayAgent
from modelfleet.agent.download import Downloader
from modelfleet.agent.healthcheck import HealthResult, HealthTarget
from modelfleet.agent.installer import Fetcher, InstallerContext, ModelInstaller
from modelfleet.agent.protocol import (
    DesiredModel,
    DesiredState,
    HealthWindow,
    NotModified,
    Report,
)
from modelfleet.agent.state import StateStore
from modelfleet.agent.telemetry import RunningModel
from modelfleet.agent.transport import FleetError
from modelfleet.agent.trustverifier import TrustVerifier
from modelfleet.agent.verifier import Verifier
from tests.trustkit import SignedModel, make_signed_model


class FastClock:
    """Time that advances only when slept on; sleeping yields to the loop once."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=self.t)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


@dataclass
class ScriptedCheck:
    """Health check that answers from a per-version table (default healthy)."""

    failing: dict[str, str] = field(default_factory=dict)
    calls: list[HealthTarget] = field(default_factory=list)

    async def check(self, target: HealthTarget) -> HealthResult:
        self.calls.append(target)
        if target.version in self.failing:
            return HealthResult(False, self.failing[target.version])
        return HealthResult(True)


@dataclass
class FakeTransport:
    """In-process fleet API: serves ``desired`` with an ETag, records reports."""

    desired: DesiredState | None = None
    offline: bool = False
    reports: list[Report] = field(default_factory=list)
    etags_seen: list[str | None] = field(default_factory=list)
    written: bool | None = None  # what the answer to a report says

    async def get_desired(
        self, *, etag: str | None, wait: float | None
    ) -> DesiredState | NotModified:
        self.etags_seen.append(etag)
        if self.offline or self.desired is None:
            raise FleetError("connection refused", transient=True)
        if etag is not None and etag == self.desired.etag:
            return NotModified(self.desired.poll_after_seconds)
        return self.desired

    async def post_report(self, report: Report) -> bool | None:
        if self.offline:
            raise FleetError("connection refused", transient=True)
        self.reports.append(report)
        return self.written


@dataclass
class StaticHealth:
    windows: list[HealthWindow] = field(default_factory=list)
    asked: list[Sequence[RunningModel]] = field(default_factory=list)

    async def sample(self, running: Sequence[RunningModel]) -> list[HealthWindow]:
        self.asked.append(list(running))
        return [
            HealthWindow(r.model, r.version, 60, "2025-01-01T00:00:00Z", 100, 1, 5.0, 9.0, 0.1)
            for r in running
        ]


def desired(
    signed: SignedModel, version: str, *, model: str = "detector", digest: str | None = None
) -> DesiredModel:
    return DesiredModel(
        model=model,
        version=version,
        digest=digest or signed.digest,
        artifact_uri=signed.artifact.as_uri(),
        signature_uri=signed.signature.as_uri(),
    )


def versions(tmp_path: Path, *names: str, archive: bool = False) -> dict[str, SignedModel]:
    """Models signed by one key (so one policy trusts them all)."""
    from tests.trustkit import make_key

    key = make_key()
    out = {}
    for v in names:
        out[v] = make_signed_model(
            tmp_path / "models",
            name=f"m{v.replace('.', '_')}",
            key=key,
            content=f"weights of {v}\n".encode() * 100,
            archive=archive,
            files={"model.onnx": f"weights of {v}".encode(), "labels.txt": b"a\nb\n"}
            if archive
            else None,
        )
    return out


def make_installer(
    data_dir: Path,
    policy: Path,
    check: ScriptedCheck | None = None,
    *,
    clock: FastClock | None = None,
    model: str = "detector",
    verifier: Verifier | None = None,
    fetcher: Fetcher | None = None,
) -> ModelInstaller:
    import aiohttp  # noqa: F401  (the downloader needs a session only for http URIs)

    state = StateStore(data_dir, "gw-1")
    state.load()
    ctx = InstallerContext(
        gateway="gw-1",
        data_dir=data_dir,
        fetcher=fetcher or Downloader(_no_http),
        verifier=verifier or TrustVerifier(policy),
        health_check=check or ScriptedCheck(),
        clock=clock or FastClock(),
        state=state,
        notify=lambda: None,
        max_artifact_bytes=1 << 30,
    )
    return ModelInstaller(ctx, model)


def make_agent(
    data_dir: Path,
    policy: Path,
    transport: FakeTransport,
    check: ScriptedCheck | None = None,
    *,
    clock: FastClock | None = None,
    health: StaticHealth | None = None,
) -> GatewayAgent:
    return GatewayAgent(
        AgentSettings(gateway="gw-1", data_dir=data_dir, poll_interval=30, report_interval=60),
        AgentDeps(
            transport=transport,
            fetcher=Downloader(_no_http),
            verifier=TrustVerifier(policy),
            health_check=check or ScriptedCheck(),
            clock=clock or FastClock(),
            health_source=health,
        ),
    )


def _no_http(uri: str):  # type: ignore[no-untyped-def]
    raise AssertionError(f"unexpected HTTP fetch of {uri}")

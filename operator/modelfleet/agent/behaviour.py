"""Injected behaviour of simulated gateways, per model version, and the synthetic parts that
play it: a health check (activation failures), a health source (traffic, errors, latency,
drift) and a transport wrapper (gateways that are offline).

``--behaviour FILE`` is a YAML mapping from version to behaviour; ``"*"`` is the default for
versions not listed (and fields not given fall back to it)::

    "*":     {errorRate: 0.002, latencyMs: {p50: 20, p95: 45}, driftScore: 0.05}
    "2.1.0": {activationFailureRate: 0.05, errorRate: 0.08,
              latencyMs: {p50: 35, p95: 260}, driftScore: 0.45, offlineFraction: 0.02}

Fields: ``activationFailureRate`` (share of gateways whose health check fails for that version),
``activationSeconds`` (how long the check takes), ``warmupSeconds`` (how long a gateway runs
the version before its first health window: a model warming up, a first window not yet full),
``errorRate``, ``latencyMs`` {p50, p95}, ``requestsPerSecond`` (per gateway), ``driftScore``,
``offlineFraction`` (share of gateways that lose the fleet API while they run that version).
Which gateways fail or go offline is decided by a hash of (seed, gateway, version), so a run is
reproducible and a failing gateway stays failing.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from modelfleet.agent.clock import Clock, isoformat
from modelfleet.agent.healthcheck import HealthResult, HealthTarget
from modelfleet.agent.protocol import DesiredState, HealthWindow, NotModified, Report
from modelfleet.agent.telemetry import RunningModel
from modelfleet.agent.transport import FleetError, FleetTransport
from modelfleet.errors import ConfigError

DEFAULT_KEY = "*"


@dataclass(frozen=True)
class Behaviour:
    """How gateways behave while running one model version."""

    activation_failure_rate: float = 0.0
    activation_seconds: float = 0.0
    warmup_seconds: float = 0.0
    error_rate: float = 0.001
    latency_p50_ms: float = 20.0
    latency_p95_ms: float = 50.0
    requests_per_second: float = 5.0
    drift_score: float = 0.02
    offline_fraction: float = 0.0


_KEYS = {
    "activationFailureRate": "activation_failure_rate",
    "activationSeconds": "activation_seconds",
    "warmupSeconds": "warmup_seconds",
    "errorRate": "error_rate",
    "requestsPerSecond": "requests_per_second",
    "driftScore": "drift_score",
    "offlineFraction": "offline_fraction",
}
_FRACTIONS = {"activation_failure_rate", "error_rate", "offline_fraction"}


@dataclass(frozen=True)
class BehaviourTable:
    """Behaviour per version, with a default."""

    default: Behaviour = Behaviour()
    versions: Mapping[str, Behaviour] | None = None

    def for_version(self, version: str) -> Behaviour:
        return (self.versions or {}).get(version, self.default)


def parse_behaviour(doc: object, where: str = "behaviour") -> BehaviourTable:
    """A :class:`BehaviourTable` from the YAML mapping described in the module docstring."""
    if doc is None:
        return BehaviourTable()
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: expected a mapping of version -> behaviour")
    default = _one(doc.get(DEFAULT_KEY, {}), Behaviour(), f"{where}: {DEFAULT_KEY!r}")
    versions = {
        str(v): _one(b, default, f"{where}: version {v!r}")
        for v, b in doc.items()
        if v != DEFAULT_KEY
    }
    return BehaviourTable(default=default, versions=versions)


def load_behaviour(path: Path) -> BehaviourTable:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read behaviour file {path}: {exc}") from exc
    return parse_behaviour(doc, str(path))


def _one(raw: object, base: Behaviour, where: str) -> Behaviour:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of fields")
    changes: dict[str, float] = {}
    for key, value in raw.items():
        if key == "latencyMs":
            if not isinstance(value, Mapping) or not set(value) <= {"p50", "p95"}:
                raise ConfigError(f"{where}: latencyMs must be a mapping with p50 and/or p95")
            for q in ("p50", "p95"):
                if q in value:
                    changes[f"latency_{q}_ms"] = _number(value[q], f"{where}: latencyMs.{q}")
            continue
        name = _KEYS.get(str(key))
        if name is None:
            known = ", ".join([*_KEYS, "latencyMs"])
            raise ConfigError(f"{where}: unknown field {key!r}; known: {known}")
        changes[name] = _number(value, f"{where}: {key}")
        if name in _FRACTIONS and not 0 <= changes[name] <= 1:
            raise ConfigError(f"{where}: {key} must be between 0 and 1")
    out = replace(base, **changes)
    if out.latency_p95_ms < out.latency_p50_ms:
        raise ConfigError(f"{where}: latencyMs.p95 is below p50")
    return out


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: must be a non-negative number")
    return float(value)


def draw(seed: int, *parts: str) -> float:
    """A uniform number in [0, 1) fixed by ``seed`` and ``parts``."""
    h = hashlib.sha256("/".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


class SyntheticHealthCheck:
    """Fails for a gateway/version when its draw is below ``activationFailureRate``."""

    def __init__(self, gateway: str, table: BehaviourTable, clock: Clock, seed: int) -> None:
        self.gateway = gateway
        self.table = table
        self.clock = clock
        self.seed = seed

    async def check(self, target: HealthTarget) -> HealthResult:
        b = self.table.for_version(target.version)
        if b.activation_seconds:
            await self.clock.sleep(b.activation_seconds)
        if draw(self.seed, "activation", self.gateway, target.version) < (
            b.activation_failure_rate
        ):
            return HealthResult(False, f"simulated activation failure of {target.version}")
        return HealthResult(True)


class SyntheticHealthSource:
    """Windows of synthetic traffic for each running version, drawn from its behaviour."""

    def __init__(self, gateway: str, table: BehaviourTable, clock: Clock, seed: int) -> None:
        self.table = table
        self.clock = clock
        self.rng = random.Random(f"{seed}/{gateway}")
        self._last: float | None = None
        self._running_since: dict[str, tuple[str, float]] = {}
        """model -> (version, when this source first saw it running)."""

    async def sample(self, running: Sequence[RunningModel]) -> list[HealthWindow]:
        now = self.clock.monotonic()
        last, self._last = self._last, now
        for r in running:
            if self._running_since.get(r.model, ("",))[0] != r.version:
                self._running_since[r.model] = (r.version, now)
        if last is None or now <= last:
            return []
        seconds = now - last
        end = isoformat(self.clock.now())
        out = []
        for r in running:
            b = self.table.for_version(r.version)
            if now - self._running_since[r.model][1] < b.warmup_seconds:
                continue  # still warming up: no window yet
            requests = _poisson(self.rng, b.requests_per_second * seconds)
            errors = sum(1 for _ in range(requests) if self.rng.random() < b.error_rate)
            jitter = self.rng.uniform(0.9, 1.1)
            out.append(
                HealthWindow(
                    model=r.model,
                    version=r.version,
                    window_seconds=round(seconds, 3),
                    window_end=end,
                    requests=requests,
                    errors=errors,
                    latency_p50_ms=b.latency_p50_ms * jitter if requests else None,
                    latency_p95_ms=b.latency_p95_ms * jitter if requests else None,
                    drift_score=max(0.0, b.drift_score + self.rng.gauss(0, 0.01)),
                )
            )
        return out


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class FlakyTransport:
    """Wraps a transport; refuses every call while ``offline()`` says so."""

    def __init__(self, inner: FleetTransport, offline: Callable[[], bool]) -> None:
        self.inner = inner
        self.offline = offline

    async def get_desired(
        self, *, etag: str | None, wait: float | None
    ) -> DesiredState | NotModified:
        if self.offline():
            raise FleetError("simulated: fleet API unreachable", transient=True)
        return await self.inner.get_desired(etag=etag, wait=wait)

    async def post_report(self, report: Report) -> bool | None:
        if self.offline():
            raise FleetError("simulated: fleet API unreachable", transient=True)
        return await self.inner.post_report(report)


def behaviour_fields() -> list[str]:
    """Field names of :class:`Behaviour` (for help texts)."""
    return [f.name for f in fields(Behaviour)]

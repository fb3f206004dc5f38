"""A tiny, deterministic fleet for decide() tests: gateways that do what they are told.

Every tick: the gateways run what ``desired_state`` tells them (from the *persisted* status,
as the fleet API would), report health for it, then ``decide`` runs and its patch is merged
into the persisted status dict, which is parsed again: each tick is a fresh operator process
that knows only what status says.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from modelfleet.api import status_from_dict, status_patch, status_to_dict
from modelfleet.core import (
    Action,
    ActionKind,
    Gateway,
    HealthReport,
    ModelState,
    ModelStateKind,
    Release,
    Verification,
    desired_state,
)
from modelfleet.core.checklist import ChecklistItem
from modelfleet.core.decide import Decision, FleetView, decide

from .factories import MODEL, NS, T0, digest, release


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class Sim:
    release: Release = field(default_factory=lambda: release("2.0.0"))
    size: int = 200
    early_every: int = 10
    now: datetime = T0
    others: list[Release] = field(default_factory=list)
    requests: int = 1000
    errors: int = 0
    p95: float = 50.0
    drift: float = 0.0
    failing: set[str] = field(default_factory=set)
    """Gateways that fail to activate (report Failed for what they are told)."""
    silent: set[str] = field(default_factory=set)
    """Gateways that run what they are told but send no health."""
    unseen: set[str] = field(default_factory=set)
    """Gateways that send nothing at all (no heartbeat, no health)."""
    lagging: bool = False
    """When true, gateways keep reporting what they ran at the previous tick."""
    first_report_after: timedelta = timedelta(0)
    """A gateway sends its first health window for a version this long after activating it."""
    activated: dict[str, datetime] = field(default_factory=dict)
    persisted: dict[str, Any] = field(default_factory=dict)
    running: dict[str, tuple[str, str]] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    revocations: dict[str, frozenset[str]] = field(default_factory=dict)
    """TrustPolicy name → deniedDigests, as the controller passes them to ``decide``."""
    checklists: dict[str, frozenset[ChecklistItem]] = field(default_factory=dict)
    """TrustPolicy name → its ``releaseChecklist.required``."""
    required: frozenset[ChecklistItem] = frozenset()
    """The operator's cluster-wide release checklist."""

    def __post_init__(self) -> None:
        self.persisted = (
            status_to_dict(self.release.status) if self.release.status.observed_generation else {}
        )
        self.names = [f"gw-{i:04d}" for i in range(self.size)]

    def labels(self, i: int) -> dict[str, str]:
        return {"ring": "early"} if i % self.early_every == 0 else {}

    def bare(self) -> list[Gateway]:
        """The gateways with what they run now (no health): what desired_state looks at."""
        out = []
        for i, n in enumerate(self.names):
            models = {}
            if n in self.running:
                version, state = self.running[n]
                models[MODEL] = ModelState(MODEL, version, digest(version), ModelStateKind(state))
            out.append(Gateway(n, NS, self.labels(i), models))
        return out

    def told(self) -> dict[str, str | None]:
        """What each gateway is told now (version or None)."""
        out: dict[str, str | None] = {}
        for gw in self.bare():
            a = desired_state(gw, [self.release, *self.others]).get(MODEL)
            out[gw.name] = None if a is None or a.snapshot is None else a.snapshot.version
        return out

    def gateways(self) -> list[Gateway]:
        told = self.told()
        out = []
        for i, name in enumerate(self.names):
            if not self.lagging:
                version = told[name]
                if version is None:
                    self.running.pop(name, None)
                else:
                    ok = name not in self.failing
                    if self.running.get(name, (None,))[0] != version:
                        self.activated[name] = self.now
                    self.running[name] = (version, "Active" if ok else "Failed")
            models: dict[str, ModelState] = {}
            health: tuple[HealthReport, ...] = ()
            if name in self.running:
                version, state = self.running[name]
                models[MODEL] = ModelState(MODEL, version, digest(version), ModelStateKind(state))
                due = self.activated.get(name, self.now) + self.first_report_after
                quiet = name in self.silent or name in self.unseen
                if state == "Active" and not quiet and self.now >= due:
                    health = (
                        HealthReport(
                            MODEL,
                            version,
                            window=timedelta(minutes=5),
                            window_end=self.now,
                            requests=self.requests,
                            errors=self.errors,
                            latency_p95_ms=self.p95,
                            drift_score=self.drift,
                        ),
                    )
            seen = None if name in self.unseen else self.now
            out.append(Gateway(name, NS, self.labels(i), models, health, last_seen=seen))
        return out

    def tick(
        self, after: timedelta = timedelta(0), *, verification: Verification | None = None
    ) -> Decision:
        self.now += after
        d = decide(
            self.release,
            FleetView(
                self.gateways(),
                [self.release, *self.others],
                self.revocations,
                checklists=self.checklists,
                default_checklist=self.required,
            ),
            self.now,
            verification=verification,
        )
        self.persisted = merge(self.persisted, status_patch(d))
        assert status_to_dict(d.status) == self.persisted, "patch does not reproduce status"
        self.release = replace(self.release, status=status_from_dict(self.persisted))
        self.decisions.append(d)
        return d

    def edit(self, **spec_changes: Any) -> None:
        """A new spec generation (what a Git commit synced to the cluster does)."""
        if "version" in spec_changes:
            v = spec_changes["version"]
            spec_changes.setdefault("digest", digest(v))
            spec_changes.setdefault("uri", f"https://models.example.com/{MODEL}/{v}/model.tar")
            spec_changes.setdefault(
                "signature", f"https://models.example.com/{MODEL}/{v}/model.sig"
            )
        self.release = replace(
            self.release,
            spec=replace(self.release.spec, **spec_changes),
            generation=self.release.generation + 1,
        )

    def act(self, kind: str, action_id: str) -> None:
        self.release = replace(self.release, action=Action(ActionKind(kind), action_id))

    @property
    def phase(self) -> str:
        return self.release.status.phase.value

    @property
    def step(self) -> int:
        return self.release.status.rollout.step

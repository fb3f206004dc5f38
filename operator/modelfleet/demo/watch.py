"""What the cluster says about one release and its gateways, read from the API server.

The demo, the e2e tests and the benchmarks judge progress only from here: ModelRelease status
(written by the operator), EdgeGateway status (written by the fleet API from the agents'
reports) and Events. Nothing is taken from the simulator's own memory.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GROUP, VERSION = "modelfleet.dev", "v1alpha1"
REVISION_ANNOTATION = "modelfleet.dev/git-revision"


@dataclass(frozen=True)
class CohortView:
    """``status.rollout.cohorts[i]``: gateways joining at that step."""

    name: str
    assigned: int
    active: int
    failed: int
    reporting: int


@dataclass(frozen=True)
class ReleaseView:
    """The parts of a ModelRelease the demo narrates."""

    exists: bool
    generation: int = 0
    observed_generation: int | None = None
    spec_version: str | None = None
    phase: str | None = None
    reason: str | None = None  # status.reason: why the phase is what it is
    message: str | None = None
    step: int | None = None
    steps: tuple[str, ...] = ()
    target: str | None = None
    stable: str | None = None
    stable_revoked: bool = False
    gate_result: str | None = None
    gate_reason: str | None = None
    error_rate: float | None = None
    cohorts: tuple[CohortView, ...] = ()
    revision: str | None = None
    source_revision: str | None = None
    history: tuple[Mapping[str, Any], ...] = ()

    @property
    def step_name(self) -> str | None:
        if self.step is None or not 0 <= self.step < len(self.steps):
            return None
        return self.steps[self.step]

    @property
    def observed(self) -> bool:
        """The operator has seen the current spec."""
        return self.exists and self.observed_generation == self.generation


@dataclass(frozen=True)
class FleetView:
    """A release and what its gateways report, at one moment."""

    release: ReleaseView
    gateways: int
    counts: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (version, state) -> n
    states: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # gateway -> (v, state)

    def count(self, version: str, state: str = "Active") -> int:
        return self.counts.get((version, state), 0)

    def on(self, version: str) -> set[str]:
        """Gateways reporting ``version`` in any state."""
        return {gw for gw, (v, _) in self.states.items() if v == version}

    def all_on(self, version: str) -> bool:
        """Every gateway reports ``version`` Active."""
        return self.gateways > 0 and self.count(version) == self.gateways

    def versions_line(self) -> str:
        if not self.counts:
            return "no reports yet"
        parts = [f"{v} {s} {n}" for (v, s), n in sorted(self.counts.items(), key=_order)]
        return ", ".join(parts)


def _order(item: tuple[tuple[str, str], int]) -> tuple[int, str, str]:
    (version, state), _ = item
    return (0 if state == "Active" else 1, version, state)


def parse_release(obj: Mapping[str, Any] | None) -> ReleaseView:
    if not obj:
        return ReleaseView(exists=False)
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    status = obj.get("status") or {}
    rollout, gates = status.get("rollout") or {}, (status.get("rollout") or {}).get("gates") or {}
    steps = tuple(str(s.get("name")) for s in (spec.get("rollout") or {}).get("steps") or [])
    cohorts = tuple(
        CohortView(
            name=str(c.get("name")),
            assigned=int(c.get("assigned") or 0),
            active=int(c.get("active") or 0),
            failed=int(c.get("failed") or 0),
            reporting=int(c.get("reporting") or 0),
        )
        for c in rollout.get("cohorts") or []
    )
    return ReleaseView(
        exists=True,
        generation=int(meta.get("generation") or 0),
        observed_generation=status.get("observedGeneration"),
        spec_version=spec.get("version"),
        **{key: status.get(key) for key in ("phase", "reason", "message")},
        step=rollout.get("step"),
        steps=steps,
        target=(status.get("target") or {}).get("version"),
        stable=(status.get("stable") or {}).get("version"),
        stable_revoked=bool((status.get("stable") or {}).get("revoked")),
        gate_result=gates.get("result"),
        gate_reason=gates.get("reason"),
        error_rate=gates.get("errorRate"),
        cohorts=cohorts,
        revision=(meta.get("annotations") or {}).get(REVISION_ANNOTATION),
        source_revision=(status.get("source") or {}).get("revision"),
        history=tuple(status.get("history") or []),
    )


def gateway_states(items: list[Mapping[str, Any]], model: str) -> dict[str, tuple[str, str]]:
    """``gateway -> (version, state)`` of ``model``, for the gateways that report it."""
    states: dict[str, tuple[str, str]] = {}
    for item in items:
        for m in (item.get("status") or {}).get("models") or []:
            if m.get("model") == model:
                name = str((item.get("metadata") or {}).get("name"))
                states[name] = (str(m.get("version") or "-"), str(m.get("state") or "-"))
    return states


class Observer:
    """Reads one release (``name``, model ``model``) and its namespace's EdgeGateways (those
    matching ``selector``, when given)."""

    selector: str | None = None  # a label selector: only these EdgeGateways count

    def __init__(self, api: Any, namespace: str, name: str, model: str | None = None) -> None:
        from kubernetes import client

        self.custom: Any = client.CustomObjectsApi(api)
        self.core: Any = client.CoreV1Api(api)
        self.namespace = namespace
        self.name = name
        self.model = model or name

    def only(self, selector: str) -> Observer:
        """Count only the EdgeGateways matching the label ``selector``; this observer."""
        self.selector = selector
        return self

    def release(self) -> ReleaseView:
        from kubernetes.client.exceptions import ApiException

        try:
            obj = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "modelreleases", self.name
            )
        except ApiException as exc:
            if exc.status == 404:
                return ReleaseView(exists=False)
            raise
        return parse_release(obj)

    def gateway_items(self) -> list[Mapping[str, Any]]:
        listed = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "edgegateways", label_selector=self.selector or ""
        )
        return list(listed.get("items") or [])

    def snapshot(self) -> FleetView:
        """Gateways first, then the release: whatever step the release shows was already
        reached when the gateways were read, so "no gateway beyond the cohorts of this step"
        checks are sound (a rollout's step only grows)."""
        items = self.gateway_items()
        release = self.release()
        states = gateway_states(items, self.model)
        return FleetView(release, len(items), dict(collections.Counter(states.values())), states)

    def events(self) -> list[tuple[str, str, str]]:
        """``(type, reason, message)`` of the release's Events, oldest first."""
        listed = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={self.name}"
        )
        items = sorted(
            listed.items,
            key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp),
        )
        return [(str(e.type), str(e.reason), str(e.message or "")) for e in items]

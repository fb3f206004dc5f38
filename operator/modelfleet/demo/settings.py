"""Flags of the processes a :class:`~modelfleet.demo.stack.Stack` starts, with the short timings
the demo and the e2e tests use as defaults (production defaults are in each command's --help)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class OperatorSettings:
    """``modelfleet operator`` flags. ``file_roots``: folders whose ``file://`` artifacts the
    operator may read (``--allow-file-root``; the demo's model shelf), none by default."""

    interval: float = 1.0
    file_roots: tuple[Path, ...] = ()
    extra: tuple[str, ...] = ()


#: ``modelfleet fleet-api`` flags the stack sets, with the demo's short timings (seconds; the
#: rate limit in requests per second and its burst in requests).
FLEET_API_DEFAULTS: dict[str, float] = {
    "poll-interval": 2.0, "active-poll-interval": 1.0, "jitter": 0.2, "health-interval": 1.0,
    "idle-health-interval": 5.0, "heartbeat-interval": 30.0, "active-heartbeat-interval": 5.0,
    "rate-limit": 20.0, "rate-burst": 50.0,
}  # fmt: skip


class FleetApiSettings:
    """``modelfleet fleet-api`` flags: any of :data:`FLEET_API_DEFAULTS` by its Python name
    (``FleetApiSettings(poll_interval=2, rate_limit=5)``), plus ``extra`` arguments."""

    def __init__(self, *, extra: tuple[str, ...] = (), **flags: float) -> None:
        given = {name.replace("_", "-"): float(value) for name, value in flags.items()}
        unknown = sorted(set(given) - set(FLEET_API_DEFAULTS))
        if unknown:
            raise TypeError(f"FleetApiSettings: unknown flags {', '.join(unknown)}")
        self.flags = {**FLEET_API_DEFAULTS, **given}
        self.extra = extra

    def args(self) -> list[str]:
        """The command-line arguments: ``--poll-interval 2.0 ...`` then ``extra``."""
        return [*(a for k, v in self.flags.items() for a in (f"--{k}", str(v))), *self.extra]


@dataclass(frozen=True)
class SyncSettings:
    """``modelfleet sync`` in loop mode."""

    repo_url: str
    ref: str = "main"
    path: str = "."
    interval: float = 1.0
    name: str = "demo"
    prune: bool = False


@dataclass(frozen=True)
class SimulatorSettings:
    """``modelfleet simulate --gateways N``: enrolled for real, then run against the fleet API.

    ``behaviour`` is the ``--behaviour`` mapping (version -> behaviour, ``"*"`` the default);
    ``label_splits`` are ``(key, value, fraction)`` triples; ``processes`` > 1 splits the
    gateways over that many simulator processes (one event loop each, so several cores);
    ``name`` names the process (and its log), so several simulators can run in one stack.
    """

    gateways: int
    name: str = "simulator"
    behaviour: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    prefix: str = "gw"
    labels: Mapping[str, str] = field(default_factory=dict)
    label_splits: tuple[tuple[str, str, float], ...] = ()
    poll_interval: float = 2.0
    report_interval: float = 1.0
    window: float = 2.0
    seed: int = 0
    progress: float = 10.0
    long_poll: float | None = None
    processes: int = 1
    extra: tuple[str, ...] = ()

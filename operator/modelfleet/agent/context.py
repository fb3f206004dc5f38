"""What the model installers of one agent share: the :class:`InstallerContext` and the
:class:`Fetcher` protocol the downloader satisfies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from modelfleet.agent.clock import Clock
from modelfleet.agent.download import Progress
from modelfleet.agent.healthcheck import HealthCheck
from modelfleet.agent.state import StateStore
from modelfleet.agent.verifier import Verifier


class Fetcher(Protocol):
    """What the installer needs from a downloader (see :class:`~.download.Downloader`)."""

    async def fetch(
        self, uri: str, dest: Path, *, max_bytes: int, progress: Progress | None = None
    ) -> int: ...


@dataclass(frozen=True)
class InstallerContext:
    """What every model installer of one agent shares."""

    gateway: str
    data_dir: Path
    fetcher: Fetcher
    verifier: Verifier
    health_check: HealthCheck
    clock: Clock
    state: StateStore
    notify: Callable[[], None]
    max_artifact_bytes: int
    retry_cap: float = 300.0
    durable: bool = True  # fsync slots and markers (off only in the simulator)

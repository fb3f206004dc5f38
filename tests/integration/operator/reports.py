"""Gateways played by writing EdgeGateway status straight into the API server.

Only for the tests that need a status the real agent and fleet API cannot produce (a health
window the operator's duration grammar cannot read: the real fleet API refuses it) or a fleet
larger than simulated agents in the test process can play on a loaded machine: every other test
drives gateways through the real fleet API and simulated agents (:mod:`.fleet`). Each ``tick()`` reads the releases from the API server, computes what every
gateway is told with ``modelfleet.core.desired_state`` (as the fleet API does), and reports that
version Active, with the health profile set for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelfleet.api import parse_release
from modelfleet.core import Gateway, desired_state

from .cluster import GROUP, MODEL, VERSION, Api, now_iso


@dataclass
class WrittenProfile:
    """How gateways running one version behave."""

    requests: int = 1000
    errors: int = 0
    p95: float = 50.0
    fail: bool = False
    silent: bool = False
    window: str = "5m"  # "0.5s": a health window the operator's duration grammar cannot read


class StatusWriter:
    """EdgeGateways that run what they are told and report it (see the module docstring)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.labels: dict[str, dict[str, str]] = {}
        self.profiles: dict[str, WrittenProfile] = {}
        self.reported: dict[str, tuple[str | None, WrittenProfile | None]] = {}
        self.told: dict[str, dict[str, str | None]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []

    def create(self, count: int, labels: Callable[[int], dict[str, str]] | None = None) -> None:
        for i in range(count):
            name = f"gw-{i:04d}"
            lab = labels(i) if labels else {}
            self.api.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.api.namespace, "edgegateways",
                {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EdgeGateway",
                 "metadata": {"name": name, "labels": lab}, "spec": {"site": "test"}},
            )  # fmt: skip
            self.labels[name] = lab

    def profile(self, version: str, **kw: Any) -> None:
        with self._lock:
            self.profiles[version] = WrittenProfile(**kw)

    def desired(self) -> dict[str, dict[str, tuple[str, str] | None]]:
        """``{gateway: {model: (version, digest) | None}}`` from the releases in the API."""
        releases = [parse_release(r) for r in self.api.releases()]
        out: dict[str, dict[str, tuple[str, str] | None]] = {}
        for name, lab in self.labels.items():
            gw = Gateway(name, self.api.namespace, lab)
            out[name] = {
                model: None if a.snapshot is None else (a.snapshot.version, a.snapshot.digest)
                for model, a in desired_state(gw, releases).items()
            }
        return out

    def tick(self) -> None:
        desired = self.desired()
        for name, models in desired.items():
            told = models.get(MODEL)
            if told is None and name in self.reported:
                continue  # no instruction: an agent keeps what it runs
            with self._lock:
                profile = None if told is None else self.profiles.get(told[0], WrittenProfile())
            key = (None if told is None else told[1], profile)
            if self.reported.get(name) == key:
                continue
            self._report(name, told, profile)
            self.reported[name] = key

    def _report(self, name: str, told: tuple[str, str] | None, p: WrittenProfile | None) -> None:
        now = now_iso()
        status: dict[str, Any] = {"lastSeen": now, "agentVersion": "test"}
        if told is None or p is None:
            status.update({"models": [], "health": []})
        else:
            version, digest = told
            state = "Failed" if p.fail else "Active"
            status["models"] = [{"model": MODEL, "version": version, "digest": digest,
                                 "state": state, "slot": "A", "since": now}]  # fmt: skip
            status["health"] = (
                []
                if (p.fail or p.silent) and p.window == "5m"
                else [{"model": MODEL, "version": version, "window": p.window, "windowEnd": now,
                       "requests": p.requests, "errors": p.errors, "latencyP95Ms": p.p95}]
            )  # fmt: skip
        self.api.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.api.namespace, "edgegateways", name, {"status": status}
        )

    def start(self, every: float = 0.3) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception as exc:  # the API server may be down on purpose
                    self.errors.append(exc)
                self._stop.wait(every)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

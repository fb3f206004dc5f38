"""Gateways played by the real parts: one ``modelfleet fleet-api`` process per test module and
simulated agents (:mod:`modelfleet.agent.simulator`, the real agent code) per test.

* :class:`FleetAPI`: a namespace holding the fleet CA and the server certificate, and the fleet
  API serving every namespace (``--all-namespaces``) over mTLS on loopback, with the short
  protocol timings these tests want. Started once per module (the ``fleet_api`` fixture); each
  test enrolls its gateways in its own namespace with that CA.
* :class:`SimulatedFleet`: ``create()`` enrolls EdgeGateways for real (client certificate,
  ``spec.certificateFingerprint``, a bundle with the artifacts' TrustPolicy as the agents' own
  policy); ``start()`` runs one :class:`~modelfleet.agent.core.GatewayAgent` per gateway in a
  background event loop: each polls the fleet API, downloads the ``file://`` artifact, verifies
  it against its own policy, switches slots, health-checks and reports; the fleet API writes
  EdgeGateway status. ``profile(version, ...)`` sets how gateways behave while running a
  version (healthy, regressing, failing activation, silent, offline), read live by the agents.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelfleet.agent.behaviour import Behaviour, BehaviourTable
from modelfleet.agent.config import load_agent_config
from modelfleet.agent.simulator import BackgroundSimulation, SimulationOptions
from modelfleet.devcluster import ControlPlane
from modelfleet.enrollment import enroll_gateways
from modelfleet.enrollment.pki import FleetCA
from modelfleet.fleet.process import FleetAPIProcess, start_fleet_api
from tests.kubekit import fleet_pki, with_kube

REQUESTS_PER_SECOND = 40.0
"""Synthetic traffic per gateway: enough for ``minRequests`` in every one-second window."""

FLEET_API_ARGS = (
    "--all-namespaces",
    "--poll-interval", "1", "--active-poll-interval", "0.5", "--jitter", "0.1",
    "--health-interval", "0.5", "--idle-health-interval", "1",
    "--active-heartbeat-interval", "2", "--heartbeat-interval", "30",
    "--rate-limit", "1000", "--rate-burst", "1000",
)  # fmt: skip
"""The fleet API's flags: every namespace, and health reaching status within a second."""


@dataclass
class FleetAPI:
    """A running fleet API for every namespace; its CA and TLS live in ``namespace``."""

    namespace: str
    ca: FleetCA
    process: FleetAPIProcess

    @property
    def url(self) -> str:
        return self.process.url


def running_fleet_api(cp: ControlPlane, folder: Path) -> Iterator[FleetAPI]:
    """Generator for a module-scoped fixture: the fleet API up, then stopped and its namespace
    removed."""
    ns = f"fleet-{secrets.token_hex(3)}"
    with cp.namespace(ns):
        ca = fleet_pki(cp.kubeconfig, ns)
        proc = start_fleet_api(
            kubeconfig=cp.kubeconfig, namespace=ns, log_path=folder / "fleet-api.log",
            extra_args=[*FLEET_API_ARGS, "--tls-namespace", ns],
        )  # fmt: skip
        try:
            yield FleetAPI(ns, ca, proc)
        finally:
            proc.stop()


@dataclass(frozen=True)
class Profile:
    """How gateways running one version behave.

    ``errors`` out of ``requests``: the error rate of their traffic; ``p95``: its latency;
    ``fail``: every activation's health check fails (the agent switches back and reports
    RolledBack); ``silent``: active but serving no traffic (health windows without requests);
    ``offline``: the gateways lose the fleet API while they run the version."""

    requests: int = 1000
    errors: int = 0
    p95: float = 50.0
    fail: bool = False
    silent: bool = False
    offline: bool = False

    def behaviour(self) -> Behaviour:
        return Behaviour(
            activation_failure_rate=1.0 if self.fail else 0.0,
            error_rate=self.errors / self.requests,
            latency_p50_ms=min(20.0, self.p95),
            latency_p95_ms=self.p95,
            requests_per_second=0.0 if self.silent else REQUESTS_PER_SECOND,
            drift_score=0.02,
            offline_fraction=1.0 if self.offline else 0.0,
        )


@dataclass
class SimulatedFleet:
    """EdgeGateways enrolled in ``namespace`` and played by simulated agents (module docstring)."""

    fleet_api: FleetAPI
    kubeconfig: Path
    """The API server's kubeconfig (enrollment creates the EdgeGateways through it)."""
    namespace: str
    trust_policy: Path
    """The agents' own TrustPolicy file."""
    folder: Path
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    """Read live by the agents (a mapping the simulation holds, not a copy)."""
    _configs: list[Any] = field(default_factory=list)
    _sim: BackgroundSimulation | None = None

    def create(self, count: int, labels: Callable[[int], dict[str, str]] | None = None) -> None:
        """Enroll ``count`` gateways ``gw-0000``.. (labels per index) for real."""
        start = len(self.labels)
        wanted = [(f"gw-{i:04d}", labels(i) if labels else {}) for i in range(start, count)]
        bundles = with_kube(self.kubeconfig, lambda kube: enroll_gateways(
            kube, wanted, namespace=self.namespace, ca=self.fleet_api.ca,
            fleet_url=self.fleet_api.url, trust_policy=self.trust_policy.read_bytes(),
        ))  # fmt: skip
        for (name, lab), bundle in zip(wanted, bundles, strict=True):
            self._configs.append(load_agent_config(bundle.write(self.folder / name)))
            self.labels[name] = lab

    def profile(self, version: str, **kw: Any) -> None:
        self.behaviours[version] = Profile(**kw).behaviour()

    def start(self) -> None:
        options = SimulationOptions(
            behaviour=BehaviourTable(default=Profile().behaviour(), versions=self.behaviours),
            poll_interval=0.5,
            report_interval=0.5,
            window_seconds=1.0,
            long_poll=10.0,
            ramp_seconds=min(3.0, 0.05 * len(self._configs)),  # no thundering herd of handshakes
        )
        self._sim = BackgroundSimulation(self._configs, options).start()

    def stop(self) -> None:
        if self._sim is not None:
            self._sim.stop()
            self._sim = None

    def logs(self) -> str:
        return self.fleet_api.process.tail(20000)

"""The stack drills run on, shared by every scenario of ``modelfleet drill all``: one control
plane (or the cluster of ``--kubeconfig``), one fleet API, one operator, all in one namespace;
and per scenario a :class:`Lane`: its own model stream (one ModelRelease), its own TrustPolicy,
and its own simulated gateways (labelled ``drill=<scenario>``, the first few also
``ring=canary``), running the real agent code in a simulator process of their own.

Everything is real: the operator verifies real signatures, the fleet API serves mTLS, the agents
download, verify and activate real artifacts; only the inference server is simulated (each
scenario's ``behaviour``). What the drill judges is read back from the API server.

With :class:`~modelfleet.drill.deployed.DeployedSettings` (``--deployed``) the operator and the
fleet API are the ones already running for the cluster: the drill checks them first
(:func:`~modelfleet.drill.deployed.preflight`), serves its artifacts over HTTP, and its gateways
enroll against the deployed fleet API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from modelfleet.demo.cluster import namespace_in_use
from modelfleet.demo.models import ModelArtifact, ModelShelf
from modelfleet.demo.stack import (
    FleetApiSettings,
    OperatorSettings,
    Service,
    SimulatorSettings,
    Stack,
    StackError,
    wait_until,
)
from modelfleet.demo.watch import GROUP, VERSION, Observer
from modelfleet.drill.deployed import (
    ArtifactServer,
    DeployedSettings,
    LeaseWatch,
    kill_operator,
    preflight,
    wait_lease_taken,
)
from modelfleet.errors import ConfigError

SCENARIO_LABEL, RING_LABEL, CANARY = "drill", "ring", "canary"
DRILL_NAMESPACE_LABEL = "modelfleet.dev/drill-namespace"  # on the drill's TrustPolicies


@dataclass(frozen=True)
class DrillSettings:
    """Sizes and timings of a drill run (defaults: small and quick, for the dev cluster)."""

    gateways: int = 5  # per scenario
    canaries: int = 2
    report_interval: float = 1.0
    window: float = 2.0
    poll_interval: float = 1.0
    operator_interval: float = 1.0
    bake: str = "3s"
    progress_deadline: str = "20s"
    timeout: float = 120.0  # per scenario, from the fault to recovery

    def rollout(self, progress_deadline: str | None = None, *, ring: bool = True) -> dict[str, Any]:
        """Every lane's rollout policy: the canary ring, then everyone (``ring=False``: everyone
        at once, for the stable version the scenarios start from)."""
        canary = {"name": "canary", "selector": {"matchLabels": {RING_LABEL: CANARY}},
                  "bake": self.bake}  # fmt: skip
        return {
            "steps": [*([canary] if ring else []), {"name": "fleet", "percent": 100}],
            "gates": {
                "maxFailedGateways": 0,
                "maxErrorRate": 0.05,
                "minReportingRatio": 0.8,
                "minRequests": 5,
                "progressDeadline": progress_deadline or self.progress_deadline,
            },
            "rollback": "Immediate",
        }


@dataclass
class Lane:
    """One scenario's model stream and gateways."""

    scenario: str
    shelf: ModelShelf
    gateways: list[str] = field(default_factory=list)
    canaries: list[str] = field(default_factory=list)
    progress_deadline: str | None = None
    simulators: list[Service] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The ModelRelease's name, which is also the model's."""
        return self.shelf.model

    @property
    def selector(self) -> str:
        return f"{SCENARIO_LABEL}={self.scenario}"


class PreflightError(ConfigError):
    """The deployed parts are not ready for a drill: one actionable line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class DrillFleet:
    """The shared stack (see the module docstring); ``say`` prints progress."""

    def __init__(
        self,
        stack: Stack,
        workdir: Path,
        settings: DrillSettings,
        say: Callable[[str], None],
        deployed: DeployedSettings | None = None,
    ) -> None:
        self.stack = stack
        self.workdir = workdir
        self.settings = settings
        self.say = say
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.models = workdir / "models"
        self.lanes: dict[str, Lane] = {}
        self.created_namespace = False
        self._policy_file: Path | None = None
        self.deployed = deployed
        self.artifacts: ArtifactServer | None = None
        self._lease_before = ""
        self._lease_watch: LeaseWatch | None = None

    @property
    def namespace(self) -> str:
        return self.stack.namespace

    @property
    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.stack.api)

    # ----------------------------------------------------------------- stack
    def setup(self) -> None:
        """Control plane, namespace (refused if it already holds releases or gateways), fleet
        CA and fleet API; the operator comes with :meth:`start_operator`."""
        stack, s, d = self.stack, self.settings, self.deployed
        stack.start_control_plane()
        self.created_namespace = stack.ensure_namespace()
        in_use = namespace_in_use(stack.api, stack.namespace)
        if in_use:
            raise ConfigError(
                f"namespace {stack.namespace} already holds {', '.join(in_use[:3])}; "
                "drills need a namespace of their own (--namespace)"
            )
        if d is not None:
            problems = preflight(stack.api, stack.namespace, d)
            if problems:
                raise PreflightError(problems)
            self.artifacts = ArtifactServer(self.models, d.serve_artifacts, d.artifact_url_base)
            self._lease_watch = LeaseWatch(stack.api, d)
            stack.fleet_url = d.fleet_url
            return
        stack.fleet_ca_init()
        stack.start_fleet_api(
            FleetApiSettings(poll_interval=s.poll_interval, active_poll_interval=s.poll_interval,
                             health_interval=s.report_interval)
        )  # fmt: skip

    def start_operator(self) -> None:
        """The drill's own operator (none when deployed: that one runs already)."""
        if self.deployed is not None:
            return
        s = self.settings
        self.stack.start_operator(
            OperatorSettings(
                interval=s.operator_interval,
                file_roots=(self.models,),
                # the gateways' cadence: the first-report grace and silence are counted in it
                extra=("--report-interval", str(s.report_interval)),
            )
        )

    def check(self) -> None:
        """Raise if a process of the drill exited, or the deployed operator is down."""
        self.stack.check()
        if self._lease_watch is not None:
            self._lease_watch.check()

    def kill_operator(self) -> str:
        """The operator-crash fault: SIGKILL our operator, or crash the deployed one (its Pods
        deleted, or the restart command run). What was done."""
        if self.deployed is None:
            self.stack.stop_service("operator", crash=True)
            return "operator SIGKILLed mid-rollout"
        what, self._lease_before = kill_operator(self.stack.api, self.deployed)
        return what

    def revive_operator(self) -> str:
        """Start our operator again, or wait until the deployed one holds its Lease again."""
        if self.deployed is None:
            self.start_operator()
            return "operator restarted and live"
        d = self.deployed
        holder = wait_lease_taken(self.stack.api, d, self._lease_before, d.restart_timeout)
        return f"Lease held again, by {holder}"

    def spec_artifact(self, artifact: ModelArtifact) -> dict[str, Any]:
        """The ``spec.artifact`` of a signed version: ``file://`` URIs, or the URLs the drill
        serves them under when deployed."""
        return {"uri": self.uri(artifact.artifact), "digest": artifact.digest,
                "signature": {"uri": self.uri(artifact.signature)}}  # fmt: skip

    def uri(self, path: Path) -> str:
        return path.resolve().as_uri() if self.artifacts is None else self.artifacts.url(path)

    def policy_file(self) -> Path:
        """The trust policy file every simulated gateway enforces (the drill's signing key)."""
        if self._policy_file is None:
            shelf = ModelShelf(self.models, key=self.key)
            self._policy_file = shelf.write_policy(self.workdir / "trust-policy.yaml")
        return self._policy_file

    # ----------------------------------------------------------------- lanes
    def open_lane(
        self,
        scenario: str,
        prefix: str,
        behaviour: Mapping[str, Mapping[str, Any]],
        groups: Sequence[int] = (),
        progress_deadline: str | None = None,
    ) -> Lane:
        """Sign the lane's versions, create its TrustPolicy and start its gateways (enrolled,
        not yet waited for: see :meth:`ready`). ``groups`` splits the gateways over several
        simulator processes (a scenario that takes some of them offline)."""
        shelf = ModelShelf(
            self.models, model=scenario, policy_name=f"drill-{self.namespace}-{scenario}"[:253],
            key=self.key,
        )  # fmt: skip
        lane = Lane(scenario, shelf, progress_deadline=progress_deadline)
        self.lanes[scenario] = lane
        policy = shelf.policy_manifest(sync_wave=None)
        policy["spec"]["namespaces"] = [self.namespace]  # the drill's key, trusted only here
        policy["metadata"]["labels"] = {DRILL_NAMESPACE_LABEL: self.namespace}  # for cleanup
        self.custom.create_cluster_custom_object(GROUP, VERSION, "trustpolicies", policy)
        sizes = list(groups) or [self.settings.gateways]
        for i, count in enumerate(sizes):
            name = prefix if len(sizes) == 1 else f"{prefix}{chr(ord('a') + i)}"
            lane.gateways += [f"{name}-{n:04d}" for n in range(count)]
            lane.simulators.append(
                self.stack.start_simulator(
                    SimulatorSettings(
                        gateways=count, name=f"sim-{scenario}-{i}", prefix=name,
                        labels={SCENARIO_LABEL: scenario}, behaviour=behaviour,
                        poll_interval=self.settings.poll_interval,
                        report_interval=self.settings.report_interval,
                        window=self.settings.window, progress=30.0, extra=self._enroll_args(),
                    ),
                    trust_policy=self.policy_file(), wait=False,
                )[0]
            )  # fmt: skip
        per_group = max(1, self.settings.canaries // len(sizes))
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        lane.canaries = [lane.gateways[s + k] for s in starts for k in range(per_group)]
        return lane

    def _enroll_args(self) -> tuple[str, ...]:
        """Deployed: the fleet CA is the deployed fleet API's, in the operator's namespace."""
        d = self.deployed
        return () if d is None else ("--ca-namespace", d.operator_namespace)

    def ready(self, lanes: Sequence[Lane]) -> None:
        """Wait for the lanes' gateways to enroll, then mark their canaries."""
        services = [svc for lane in lanes for svc in lane.simulators]
        wait_until(
            lambda: all("enrolled " in svc.tail(50) for svc in services),
            timeout=90, what="the drill's gateways to enroll", services=services,
        )  # fmt: skip
        for lane in lanes:
            for gw in lane.canaries:
                self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, "edgegateways", gw,
                    {"metadata": {"labels": {RING_LABEL: CANARY}}},
                )  # fmt: skip

    def release(
        self,
        lane: Lane,
        artifact: ModelArtifact | Mapping[str, Any],
        version: str,
        *,
        ring: bool = True,
    ) -> None:
        """Create the lane's ModelRelease at ``version`` or move its spec there (what a Git
        sync does); ``artifact`` is a signed shelf version or a raw ``spec.artifact``."""
        from kubernetes.client.exceptions import ApiException

        spec_artifact = (
            self.spec_artifact(artifact) if isinstance(artifact, ModelArtifact) else dict(artifact)
        )
        spec = {
            "model": lane.name,
            "version": version,
            "artifact": spec_artifact,
            "trustPolicy": lane.shelf.policy_name,
            "gateways": {"selector": {"matchLabels": {SCENARIO_LABEL: lane.scenario}}},
            "rollout": self.settings.rollout(lane.progress_deadline, ring=ring),
        }
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelRelease",
                "metadata": {"name": lane.name}, "spec": spec}  # fmt: skip
        try:
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "modelreleases", body
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "modelreleases", lane.name, {"spec": spec}
            )

    def observer(self, lane: Lane) -> Observer:
        return Observer(self.stack.api, self.namespace, lane.name).only(lane.selector)

    def baseline(self, lanes: Sequence[Lane], version: str, timeout: float = 180.0) -> None:
        """Roll ``version`` out on every lane at once and wait until each succeeded with all of
        its gateways on it: the stable version each scenario starts from."""
        for lane in lanes:
            self.release(lane, lane.shelf.build(version), version, ring=False)
        pending = {lane.scenario: (lane, self.observer(lane)) for lane in lanes}

        def settled() -> bool:
            self.check()
            for key, (lane, obs) in list(pending.items()):
                view = obs.snapshot()
                r = view.release
                if r.phase in ("Rejected", "Aborted") and r.spec_version == version:
                    raise StackError(
                        f"baseline {version} of {lane.scenario} ended {r.phase}: {r.message}"
                        + self._allow_hint()
                    )
                if r.phase == "Succeeded" and r.stable == version and view.all_on(version):
                    del pending[key]
            return not pending

        wait_until(settled, timeout=timeout, interval=0.5,
                   what=f"{version} on every drill lane", services=self.stack.services)  # fmt: skip

    def _allow_hint(self) -> str:
        if self.artifacts is None:
            return ""
        return (
            f" (the deployed operator must allow the drill's artifacts: --allow-host="
            f"{self.artifacts.authority}, and --allow-scheme=http for an http:// URL)"
        )

    def close(self) -> None:
        """Stop serving artifacts (deployed)."""
        if self.artifacts is not None:
            self.artifacts.close()
            self.artifacts = None

    def close_lane(self, lane: Lane) -> None:
        """Stop the lane's gateways at once (SIGKILL: nothing of theirs needs saving; their
        objects stay until the namespace goes)."""
        for svc in lane.simulators:
            self.stack.stop_service(svc.name, crash=True)

    def delete_trust_policies(self) -> None:
        """Remove the lanes' TrustPolicies (cluster-scoped: the namespace does not take them)."""
        from kubernetes.client.exceptions import ApiException

        for lane in self.lanes.values():
            try:
                self.custom.delete_cluster_custom_object(
                    GROUP, VERSION, "trustpolicies", lane.shelf.policy_name
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise

"""Real processes of the whole loop: control plane, operator, fleet API, sync and simulated
gateways, each a subprocess with its own log file, stopped cleanly whatever happens.

This module owns process lifecycle only (start, readiness, liveness checks, stop); what the
processes do is the business of the commands they run (``python -m modelfleet …``). Used by
``modelfleet demo``, ``tests/e2e`` and ``bench/``::

    with Stack(workdir, namespace="retail") as stack:       # stop() on exit, Ctrl-C or error
        stack.start_control_plane()                          # or Stack(..., kubeconfig=path)
        stack.ensure_namespace()
        stack.fleet_ca_init()
        stack.start_fleet_api(FleetApiSettings(poll_interval=2))
        stack.start_operator(OperatorSettings(interval=1))
        stack.start_sync(SyncSettings(repo_url="file:///tmp/fleet.git"))
        stack.start_simulator(SimulatorSettings(gateways=100), trust_policy=Path("tp.yaml"))

Every child runs in a process group of its own (:class:`~modelfleet.demo.process.Service`), so a
Ctrl-C in the terminal reaches only this process, which then stops the groups in reverse start
order (SIGTERM, then SIGKILL after a grace period). Unless ``tie_to_parent=False``
(``modelfleet demo --keep``), children also die with this process if it is killed outright. A
kept stack records its process groups in ``stack.json`` for
:func:`~modelfleet.demo.process.stop_recorded`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

import modelfleet
from modelfleet.controller.probes import logged_probes
from modelfleet.demo.process import (
    Service,
    StackError,
    http_ok,
    run_quietly,
    stop_recorded,
    wait_until,
)
from modelfleet.demo.settings import (
    FleetApiSettings,
    OperatorSettings,
    SimulatorSettings,
    SyncSettings,
)
from modelfleet.devcluster import ControlPlane, free_port

PACKAGE_ROOT = Path(modelfleet.__file__).resolve().parent.parent

__all__ = [
    "FleetApiSettings",
    "OperatorSettings",
    "Service",
    "SimulatorSettings",
    "Stack",
    "StackError",
    "SyncSettings",
    "stop_recorded",
    "wait_until",
]


class Stack:
    """The processes of one modelfleet loop in ``workdir`` for one namespace."""

    def __init__(
        self,
        workdir: Path,
        namespace: str,
        *,
        kubeconfig: Path | None = None,
        tie_to_parent: bool = True,
        python: str = sys.executable,
    ) -> None:
        self.workdir = workdir
        self.namespace = namespace
        self.tie_to_parent = tie_to_parent
        self.python = python
        self.services: list[Service] = []
        self.control_plane: ControlPlane | None = None
        self.fleet_url: str | None = None
        self.fleet_metrics_url: str | None = None  # the fleet API's Prometheus page
        self._kubeconfig = kubeconfig
        self._api: Any = None
        workdir.mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------- context
    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- cluster
    @property
    def kubeconfig(self) -> Path:
        if self._kubeconfig is None:
            raise StackError("no cluster yet: call start_control_plane() or pass kubeconfig=")
        return self._kubeconfig

    def start_control_plane(self, *, build: bool = True) -> Path:
        """Start etcd + kube-apiserver in ``workdir/control-plane`` (or use the current
        kubeconfig with ``USE_EXISTING_CLUSTER=true``); CRDs installed. The kubeconfig."""
        if self._kubeconfig is not None:
            return self._kubeconfig
        cp = ControlPlane.from_environment(build=build)
        if not cp.existing:
            cp.workdir = self.workdir / "control-plane"
            cp.keep_workdir = True
        cp.start()
        self.control_plane = cp
        self._kubeconfig = cp.kubeconfig
        self._record()
        return cp.kubeconfig

    @property
    def connected(self) -> bool:
        """A cluster is known (given, or started by :meth:`start_control_plane`)."""
        return self._kubeconfig is not None

    @property
    def owns_cluster(self) -> bool:
        """This stack started the control plane (so stopping it removes everything)."""
        return self.control_plane is not None and not self.control_plane.existing

    @property
    def api(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for this cluster."""
        if self._api is None:
            from modelfleet.kube import api_client, load_access

            self._api = api_client(load_access(self.kubeconfig))
        return self._api

    def ensure_namespace(self) -> bool:
        """Create the namespace unless it exists; whether it was created."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        core: Any = client.CoreV1Api(self.api)
        try:
            core.create_namespace(body)
        except ApiException as exc:
            if exc.status != 409:
                raise StackError(f"cannot create namespace {self.namespace}: {exc.reason}") from exc
            return False
        return True

    @property
    def env(self) -> dict[str, str]:
        """The environment of every child: ours, plus the kubeconfig and this package."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        no_proxy = {"127.0.0.1", "localhost", *env.get("NO_PROXY", "").split(",")} - {""}
        env["NO_PROXY"] = env["no_proxy"] = ",".join(sorted(no_proxy))
        return env

    def modelfleet(self, *args: str) -> list[str]:
        return [self.python, "-m", "modelfleet", *args]

    def run(self, *args: str, timeout: float = 120.0) -> str:
        """Run ``modelfleet ARGS`` to completion; its stdout, or :class:`StackError`."""
        proc = run_quietly(self.modelfleet(*args), cwd=self.workdir, env=self.env, timeout=timeout)
        if proc.returncode != 0:
            detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            raise StackError(f"modelfleet {' '.join(args[:2])} failed: {' / '.join(detail[-3:])}")
        return proc.stdout

    # ----------------------------------------------------------------- services
    def _start(self, name: str, argv: Sequence[str]) -> Service:
        svc = Service(
            name=name,
            argv=argv,
            log=self.workdir / "logs" / f"{name}.log",
            env=self.env,
            cwd=self.workdir,
            tie_to_parent=self.tie_to_parent,
        )
        svc.start()
        self.services.append(svc)
        self._record()
        return svc

    def service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise StackError(f"no service {name!r} in this stack")

    def stop_service(self, name: str, *, crash: bool = False) -> Service:
        """Stop service ``name`` (with ``crash``: SIGKILL, as a crash would) and forget it, so
        that :meth:`check` does not report it and it can be started again."""
        svc = self.service(name)
        if crash:
            svc.kill()
        else:
            svc.stop()
        self.services.remove(svc)
        self._record()
        return svc

    def fleet_ca_init(self) -> None:
        """``modelfleet fleet-ca init``: the fleet CA and the fleet API's certificate."""
        self.run(
            "fleet-ca", "init", "--namespace", self.namespace,
            "--kubeconfig", str(self.kubeconfig),
            "--ca-out", str(self.workdir / "fleet-ca.crt"),
        )  # fmt: skip

    def start_fleet_api(self, settings: FleetApiSettings | None = None) -> str:
        """The fleet API on a free loopback port, ready (watches listed); its URL."""
        port, metrics = free_port(), free_port()
        svc = self._start(
            "fleet-api",
            self.modelfleet(
                "fleet-api", "--host", "127.0.0.1", "--port", str(port),
                "--namespace", self.namespace, "--tls-namespace", self.namespace,
                "--kubeconfig", str(self.kubeconfig),
                "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics),
                *(settings or FleetApiSettings()).args(),
            ),
        )  # fmt: skip
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{metrics}/healthz"),
            timeout=60, what="the fleet API to serve", services=[svc],
        )  # fmt: skip
        self.fleet_url = f"https://127.0.0.1:{port}"
        self.fleet_metrics_url = f"http://127.0.0.1:{metrics}/metrics"
        return self.fleet_url

    def start_operator(self, settings: OperatorSettings | None = None) -> Service:
        """The operator for this namespace, ready (kopf's liveness endpoint answers)."""
        settings = settings or OperatorSettings()
        log = self.workdir / "logs" / "operator.log"  # appended to: read what this run adds
        offset = log.stat().st_size if log.exists() else 0
        svc = self._start(
            "operator",
            self.modelfleet(
                "operator", "--namespace", self.namespace,
                "--interval", str(settings.interval),
                "--kubeconfig", str(self.kubeconfig),
                "--liveness", "http://127.0.0.1:0/healthz",  # a free port, logged
                "--material-namespace", self.namespace,
                *(arg for root in settings.file_roots for arg in ("--allow-file-root", str(root))),
                *settings.extra,
            ),
        )  # fmt: skip

        def live() -> bool:
            with svc.log.open("rb") as out:
                out.seek(offset)
                url = logged_probes(out.read().decode(errors="replace"))
            return url is not None and http_ok(f"{url}/healthz")

        wait_until(
            live, timeout=60, what="the operator to start", services=[svc],
        )  # fmt: skip
        return svc

    def start_sync(self, settings: SyncSettings) -> Service:
        """``modelfleet sync --interval`` of the repository into this namespace."""
        return self._start(
            "sync",
            self.modelfleet(
                "sync", settings.repo_url, "--ref", settings.ref, "--path", settings.path,
                "--name", settings.name, "--namespace", self.namespace,
                "--interval", str(settings.interval),
                "--cache-dir", str(self.workdir / "sync-cache"),
                "--kubeconfig", str(self.kubeconfig), "--json",
                "--allow-trust-policies",  # the demo repository holds its TrustPolicy
                *(["--prune"] if settings.prune else []),
            ),
        )  # fmt: skip

    def synced_revisions(self) -> list[str]:
        """Revisions the sync process reported applying, oldest first (from its log)."""
        out: list[str] = []
        try:
            text = self.service("sync").log.read_text(errors="replace")
        except OSError:
            return out
        for line in text.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    doc = json.loads(line)
                    if isinstance(doc, dict) and doc.get("revision"):
                        out.append(str(doc["revision"]))
        return out

    def wait_synced(self, revision: str, timeout: float = 60.0) -> None:
        """Wait until the sync loop has applied ``revision``."""
        wait_until(
            lambda: revision in self.synced_revisions(),
            timeout=timeout, what=f"sync of {revision[:12]}", services=[self.service("sync")],
        )  # fmt: skip

    def start_simulator(
        self, settings: SimulatorSettings, *, trust_policy: Path, wait: bool = True
    ) -> list[Service]:
        """Enroll ``settings.gateways`` gateways and run them, in ``settings.processes``
        simulator processes (gateways ``<prefix>-NNNN``, or ``<prefix><i>-NNNN`` when split);
        returns once all are enrolled (at once with ``wait=False``)."""
        if self.fleet_url is None:
            raise StackError("start the fleet API before the simulator")
        s = settings
        if not 1 <= s.processes <= s.gateways:
            raise StackError(f"cannot run {s.gateways} gateways in {s.processes} processes")
        behaviour = self.workdir / f"{s.name}-behaviour.yaml"
        behaviour.write_text(yaml.safe_dump({k: dict(v) for k, v in s.behaviour.items()}))
        started: list[Service] = []
        for i in range(s.processes):
            count = s.gateways // s.processes + (1 if i < s.gateways % s.processes else 0)
            prefix = s.prefix if s.processes == 1 else f"{s.prefix}{i}"
            args = [
                "simulate", "--gateways", str(count), "--prefix", prefix,
                "--namespace", self.namespace, "--ca-namespace", self.namespace,
                "--kubeconfig", str(self.kubeconfig), "--fleet-url", self.fleet_url,
                "--trust-policy", str(trust_policy), "--workdir", str(self.workdir / "gateways"),
                "--behaviour", str(behaviour), "--seed", str(s.seed),
                "--poll-interval", str(s.poll_interval),
                "--report-interval", str(s.report_interval),
                "--window", str(s.window), "--progress", str(s.progress),
            ]  # fmt: skip
            if s.labels:
                args += ["--labels", ",".join(f"{k}={v}" for k, v in s.labels.items())]
            for key, value, fraction in s.label_splits:
                args += ["--label-split", f"{key}={value}:{fraction}"]
            if s.long_poll:
                args += ["--long-poll", str(s.long_poll)]
            name = s.name if s.processes == 1 else f"{s.name}-{i}"
            started.append(self._start(name, self.modelfleet(*args, *s.extra)))
        if not wait:
            return started
        wait_until(
            lambda: all("enrolled " in svc.tail(50) for svc in started),
            timeout=60 + s.gateways * 0.2, what=f"{s.gateways} gateways to enroll",
            services=started,
        )  # fmt: skip
        return started

    # ----------------------------------------------------------------- health, stop
    def check(self) -> None:
        """Raise :class:`StackError` if any started process has exited."""
        for svc in self.services:
            svc.check()

    def stop(self) -> None:
        """Stop every process this stack started, newest first, then the control plane."""
        errors: list[str] = []
        stopped_any = bool(self.services) or self.control_plane is not None
        for svc in reversed(self.services):
            try:
                svc.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(f"{svc.name}: {exc}")
        self.services = []
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None
        if self._api is not None:
            with contextlib.suppress(Exception):
                self._api.close()
            self._api = None
        if stopped_any:
            (self.workdir / "stack.json").unlink(missing_ok=True)
        if errors:
            raise StackError("could not stop " + "; ".join(errors))

    def detach(self) -> Path:
        """Leave everything running (``--keep``): record it in ``stack.json`` for
        :func:`stop_recorded` and forget it, so :meth:`stop` stops nothing. The file."""
        self._record()
        self.services = []
        self.control_plane = None
        return self.workdir / "stack.json"

    def _record(self) -> None:
        groups = [s.pid for s in self.services if s.pid is not None]
        cp = self.control_plane
        if cp is not None:
            groups += [p.pid for p in (cp.apiserver, cp.etcd) if p is not None]
        state = {
            "namespace": self.namespace,
            "fleetURL": self.fleet_url,
            "kubeconfig": str(self._kubeconfig) if self._kubeconfig else None,
            "processGroups": groups,
        }
        (self.workdir / "stack.json").write_text(json.dumps(state, indent=2))

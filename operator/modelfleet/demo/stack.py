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

Every child runs in a process group of its own (``start_new_session``), so a Ctrl-C in the
terminal reaches only this process, which then stops the groups in reverse start order (SIGTERM,
then SIGKILL after a grace period). Unless ``tie_to_parent=False`` (``modelfleet demo --keep``),
children also get ``PR_SET_PDEATHSIG``: if this process is killed outright, they die with it.
A kept stack records its process groups in ``stack.json`` for :func:`stop_recorded`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

import modelfleet
from modelfleet.devcluster import ControlPlane, free_port
from modelfleet.errors import ModelfleetError

PACKAGE_ROOT = Path(modelfleet.__file__).resolve().parent.parent
STOP_GRACE = 15.0
PR_SET_PDEATHSIG = 1


class StackError(ModelfleetError):
    """A process of the stack failed to start, exited early or could not be reached."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Service:
    """One long-running ``python -m modelfleet …`` (or any argv) with its log file."""

    name: str
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str]
    cwd: Path
    tie_to_parent: bool = True
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(self.argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(self.env),
                cwd=self.cwd,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_die_with_parent if self.tie_to_parent else None,  # noqa: PLW1509
            )

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise :class:`StackError` with the end of the log if the process has exited."""
        if self.proc is None:
            raise StackError(f"{self.name} was never started")
        code = self.proc.poll()
        if code is not None:
            raise StackError(
                f"{self.name} exited with code {code}; end of {self.log}: {self.tail(8)}"
            )

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM the process group, SIGKILL after ``grace`` seconds; the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        # Anything the child left behind in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole group at once (chaos and restart tests)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@dataclass(frozen=True)
class OperatorSettings:
    """``modelfleet operator`` flags."""

    interval: float = 1.0
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class FleetApiSettings:
    """``modelfleet fleet-api`` flags (protocol timings, in seconds)."""

    poll_interval: float = 2.0
    active_poll_interval: float = 1.0
    jitter: float = 0.2
    health_interval: float = 1.0
    idle_health_interval: float = 5.0
    heartbeat_interval: float = 30.0
    active_heartbeat_interval: float = 5.0
    rate_limit: float = 20.0
    rate_burst: float = 50.0
    extra: tuple[str, ...] = ()


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
    ``label_splits`` are ``(key, value, fraction)`` triples.
    """

    gateways: int
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
    extra: tuple[str, ...] = ()


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    services: Sequence[Service] = (),
    interval: float = 0.2,
) -> Any:
    """Poll ``predicate`` until truthy (returned), checking that ``services`` still run."""
    deadline = time.monotonic() + timeout
    while True:
        for svc in services:
            svc.check()
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


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
        self._kubeconfig = kubeconfig
        self._api: Any = None
        workdir.mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------- context
    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
            from modelfleet.gitops.apply import api_client

            self._api = api_client(self.kubeconfig)
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
        proc = subprocess.run(
            self.modelfleet(*args),
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
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

    def fleet_ca_init(self) -> None:
        """``modelfleet fleet-ca init``: the fleet CA and the fleet API's certificate."""
        self.run(
            "fleet-ca", "init", "--namespace", self.namespace,
            "--kubeconfig", str(self.kubeconfig),
            "--ca-out", str(self.workdir / "fleet-ca.crt"),
        )  # fmt: skip

    def start_fleet_api(self, settings: FleetApiSettings = FleetApiSettings()) -> str:
        """The fleet API on a free loopback port, ready (watches listed); its URL."""
        port, metrics = free_port(), free_port()
        s = settings
        svc = self._start(
            "fleet-api",
            self.modelfleet(
                "fleet-api", "--host", "127.0.0.1", "--port", str(port),
                "--namespace", self.namespace, "--tls-namespace", self.namespace,
                "--kubeconfig", str(self.kubeconfig),
                "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics),
                "--poll-interval", str(s.poll_interval),
                "--active-poll-interval", str(s.active_poll_interval),
                "--jitter", str(s.jitter),
                "--health-interval", str(s.health_interval),
                "--idle-health-interval", str(s.idle_health_interval),
                "--heartbeat-interval", str(s.heartbeat_interval),
                "--active-heartbeat-interval", str(s.active_heartbeat_interval),
                "--rate-limit", str(s.rate_limit), "--rate-burst", str(s.rate_burst),
                *s.extra,
            ),
        )  # fmt: skip
        wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{metrics}/healthz"),
            timeout=60, what="the fleet API to serve", services=[svc],
        )  # fmt: skip
        self.fleet_url = f"https://127.0.0.1:{port}"
        return self.fleet_url

    def start_operator(self, settings: OperatorSettings = OperatorSettings()) -> Service:
        """The operator for this namespace, ready (kopf's liveness endpoint answers)."""
        liveness = free_port()
        svc = self._start(
            "operator",
            self.modelfleet(
                "operator", "--namespace", self.namespace,
                "--interval", str(settings.interval),
                "--kubeconfig", str(self.kubeconfig),
                "--liveness", f"http://127.0.0.1:{liveness}/healthz",
                "--material-namespace", self.namespace,
                *settings.extra,
            ),
        )  # fmt: skip
        wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{liveness}/healthz"),
            timeout=60, what="the operator to start", services=[svc],
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

    def start_simulator(self, settings: SimulatorSettings, *, trust_policy: Path) -> Service:
        """Enroll ``settings.gateways`` gateways and run them; returns once they are enrolled."""
        if self.fleet_url is None:
            raise StackError("start the fleet API before the simulator")
        s = settings
        behaviour = self.workdir / "behaviour.yaml"
        behaviour.write_text(yaml.safe_dump({k: dict(v) for k, v in s.behaviour.items()}))
        args = [
            "simulate", "--gateways", str(s.gateways), "--prefix", s.prefix,
            "--namespace", self.namespace, "--ca-namespace", self.namespace,
            "--kubeconfig", str(self.kubeconfig), "--fleet-url", self.fleet_url,
            "--trust-policy", str(trust_policy), "--workdir", str(self.workdir / "gateways"),
            "--behaviour", str(behaviour), "--seed", str(s.seed),
            "--poll-interval", str(s.poll_interval), "--report-interval", str(s.report_interval),
            "--window", str(s.window), "--progress", str(s.progress),
        ]  # fmt: skip
        if s.labels:
            args += ["--labels", ",".join(f"{k}={v}" for k, v in s.labels.items())]
        for key, value, fraction in s.label_splits:
            args += ["--label-split", f"{key}={value}:{fraction}"]
        if s.long_poll:
            args += ["--long-poll", str(s.long_poll)]
        svc = self._start("simulator", self.modelfleet(*args, *s.extra))
        wait_until(
            lambda: "enrolled " in svc.tail(50),
            timeout=60 + s.gateways * 0.2, what=f"{s.gateways} gateways to enroll",
            services=[svc],
        )  # fmt: skip
        return svc

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


def stop_recorded(workdir: Path, grace: float = STOP_GRACE) -> int:
    """Stop the process groups a kept stack recorded in ``workdir/stack.json``; how many."""
    state_file = workdir / "stack.json"
    if not state_file.exists():
        raise StackError(f"no stack.json in {workdir}: nothing recorded to stop")
    groups = [int(p) for p in json.loads(state_file.read_text()).get("processGroups", [])]
    alive = []
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
            alive.append(pgid)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if _group_alive(p)]
    for pgid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    state_file.unlink()
    return len(groups)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

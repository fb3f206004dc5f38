"""Fixtures for the operator's integration tests: the operator as a real subprocess, real signed
artifacts, and a gateway driver that writes reports straight into EdgeGateway status.

* ``operator`` (function scope): ``python -m modelfleet operator --namespace NS --interval 1
  --report-interval 1`` against the session's control plane, opted in to what the tests serve
  (``file://`` under the test's folder, plain ``http://`` on loopback; the gateways played here
  report health at once, so the first-report grace is two seconds); ``.kill()`` (SIGKILL),
  ``.start()``, ``.writes()``.
* ``artifacts``: signs model versions with one key, serves them as ``file://`` URIs, and applies
  the matching cluster-scoped TrustPolicy (a unique name per test).
* ``fleet``: creates EdgeGateways and plays their agents: each ``tick()`` reads the releases from
  the API server, computes what every gateway is told with ``modelfleet.core.desired_state`` (as
  the fleet API does), and reports that version Active, with the health profile set for it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from modelfleet.api import parse_release
from modelfleet.core import Gateway, desired_state
from modelfleet.devcluster import ControlPlane, free_port
from tests.trustkit import SignedModel, make_key, make_signed_model

GROUP, VERSION = "modelfleet.dev", "v1alpha1"
MODEL = "detector"
ROOT = Path(__file__).resolve().parents[3]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wait_for(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; that value (or fail)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: {last!r}")


# --------------------------------------------------------------------------- API access


class Api:
    """Thin sync access to ModelReleases and EdgeGateways of one namespace."""

    def __init__(self, cp: ControlPlane, namespace: str) -> None:
        self.cp = cp
        self.namespace = namespace
        self.client = k8s_config.new_client_from_config(config_file=str(cp.kubeconfig))
        self.custom = k8s.CustomObjectsApi(self.client)
        self.core = k8s.CoreV1Api(self.client)

    def release(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "modelreleases", name
        )

    def releases(self) -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "modelreleases"
        )["items"]

    def status(self, name: str) -> dict[str, Any]:
        return self.release(name).get("status") or {}

    def apply_release(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        try:
            current = self.release(name)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            return self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "modelreleases", body
            )
        body = json.loads(json.dumps(body))
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        body["metadata"].setdefault("annotations", {}).update(
            {
                k: v
                for k, v in (current["metadata"].get("annotations") or {}).items()
                if k not in body["metadata"]["annotations"]
            }
        )
        body["status"] = current.get("status")
        return self.custom.replace_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "modelreleases", name, body
        )

    def patch_release(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "modelreleases", name, patch
        )

    def action(self, name: str, action: str, action_id: str) -> None:
        self.patch_release(
            name,
            {
                "metadata": {
                    "annotations": {
                        "modelfleet.dev/action": action,
                        "modelfleet.dev/action-id": action_id,
                    }
                }
            },
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        items = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return [{"reason": e.reason, "type": e.type, "message": e.message} for e in items]


# --------------------------------------------------------------------------- the operator


@dataclass
class OperatorProcess:
    """``modelfleet operator`` as a subprocess (a new one after each ``kill``)."""

    cp: ControlPlane
    namespace: str
    log_dir: Path
    interval: float = 1.0
    report_interval: float = 1.0
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    starts: int = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.metrics_port = free_port()
        liveness = free_port()
        self.starts += 1
        log = (self.log_dir / f"operator-{self.starts}.log").open("wb")
        cmd = [
            sys.executable, "-m", "modelfleet", "-v", "operator",
            "--namespace", self.namespace,
            "--interval", str(self.interval),
            "--report-interval", str(self.report_interval),
            "--kubeconfig", str(self.cp.kubeconfig),
            "--metrics-port", str(self.metrics_port), "--metrics-host", "127.0.0.1",
            "--liveness", f"http://127.0.0.1:{liveness}/healthz",
            *self.extra,
        ]  # fmt: skip
        env = dict(self.cp.env)
        env["PYTHONPATH"] = str(ROOT / "operator")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        log.close()

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=1):
                    return True
            except OSError:
                return False

        wait_for(ready, timeout=30, what="operator liveness")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log"))
        )

    def writes(self) -> dict[str, int]:
        """API writes of the running process, by kind (from its metrics port)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            text = r.read().decode()
        out: dict[str, int] = {}
        for line in text.splitlines():
            if line.startswith("modelfleet_operator_api_writes_total{"):
                kind = line.split('kind="', 1)[1].split('"', 1)[0]
                out[kind] = int(float(line.rsplit(" ", 1)[1]))
        return out


def artifact_sources(folder: Path) -> tuple[str, ...]:
    """The artifact sources the operator tests use: files under ``folder``, HTTP on loopback."""
    return (
        "--allow-file-root", str(folder),
        "--allow-scheme", "http",
        "--allow-host", "127.0.0.1",
        "--allow-host", "localhost",
    )  # fmt: skip


@pytest.fixture
def api(control_plane: ControlPlane, namespace: str) -> Api:
    return Api(control_plane, namespace)


@pytest.fixture
def operator(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(control_plane, namespace, tmp_path, extra=artifact_sources(tmp_path))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            sys.stderr.write(proc.logs()[-20000:])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


# --------------------------------------------------------------------------- artifacts


@dataclass
class Artifacts:
    """Signed versions of one model (one signing key) and the TrustPolicy that trusts the key."""

    cp: ControlPlane
    root: Path
    policy: str
    key: Any = field(default_factory=make_key)
    versions: dict[str, SignedModel] = field(default_factory=dict)
    denied: list[str] = field(default_factory=list)

    def sign(self, version: str) -> SignedModel:
        if version not in self.versions:
            self.versions[version] = make_signed_model(
                self.root / version,
                key=self.key,
                content=f"detector weights {version}\n".encode() * 64,
                policy_name=self.policy,
            )
        return self.versions[version]

    def apply_policy(self) -> None:
        signed = next(iter(self.versions.values())) if self.versions else self.sign("0.0.0")
        doc = yaml.safe_load(signed.policy_path.read_text())
        doc["metadata"]["name"] = self.policy
        if self.denied:
            doc["spec"]["deniedDigests"] = list(self.denied)
        self.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))

    def deny(self, version: str) -> None:
        self.denied.append(self.sign(version).digest)
        self.apply_policy()

    def artifact(self, version: str, base_url: str | None = None) -> dict[str, Any]:
        s = self.sign(version)
        if base_url is None:
            return {
                "uri": s.artifact.as_uri(),
                "digest": s.digest,
                "signature": {"uri": s.signature.as_uri()},
            }
        rel_a = s.artifact.relative_to(self.root).as_posix()
        rel_s = s.signature.relative_to(self.root).as_posix()
        return {
            "uri": f"{base_url}/{rel_a}",
            "digest": s.digest,
            "signature": {"uri": f"{base_url}/{rel_s}"},
        }


@pytest.fixture
def artifacts(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Artifacts]:
    arts = Artifacts(control_plane, tmp_path / "artifacts", policy=f"signers-{namespace}")
    arts.sign("1.0.0")
    arts.apply_policy()
    yield arts
    control_plane.kubectl("delete", "trustpolicy", arts.policy, "--wait=false", check=False)


def release_body(
    name: str,
    version: str,
    artifacts: Artifacts,
    *,
    steps: list[dict[str, Any]] | None = None,
    gates: dict[str, Any] | None = None,
    rollback: str = "Immediate",
    paused: bool = False,
    selector: dict[str, str] | None = None,
    base_url: str | None = None,
    model: str = MODEL,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": model,
        "version": version,
        "artifact": artifacts.artifact(version, base_url),
        "trustPolicy": artifacts.policy,
        "rollout": {
            "steps": steps
            or [
                {"name": "canary", "percent": 10, "bake": "2s"},
                {"name": "half", "percent": 50, "bake": "2s"},
                {"name": "fleet", "percent": 100, "bake": "2s"},
            ],
            "gates": gates
            or {
                "maxFailedGateways": 0,
                "maxErrorRate": 0.05,
                "maxLatencyP95Ms": 200,
                "minReportingRatio": 0.9,
                "minRequests": 10,
            },
            "rollback": rollback,
        },
        "paused": paused,
    }
    if selector:
        spec["gateways"] = {"selector": {"matchLabels": selector}}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelRelease",
        "metadata": {"name": name},
        "spec": spec,
    }


# --------------------------------------------------------------------------- gateways


@dataclass
class Profile:
    """How gateways running one version behave."""

    requests: int = 1000
    errors: int = 0
    p95: float = 50.0
    fail: bool = False
    silent: bool = False
    window: str = "5m"  # "0.5s": a health window the operator's duration grammar cannot read
    first_report_after: float = 0.0
    """Seconds between activating the version and the first health window (as a real agent:
    state at once, health once a window is full)."""


class FleetDriver:
    """EdgeGateways that run what they are told and report it (see the module docstring)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.labels: dict[str, dict[str, str]] = {}
        self.profiles: dict[str, Profile] = {}
        self.reported: dict[str, tuple[str | None, Profile | None, bool]] = {}
        self.activated: dict[str, tuple[str, float]] = {}
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
            self.profiles[version] = Profile(**kw)

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
                profile = None if told is None else self.profiles.get(told[0], Profile())
            digest = None if told is None else told[1]
            if digest is not None and self.activated.get(name, ("",))[0] != digest:
                self.activated[name] = (digest, time.monotonic())
            due = profile is not None and (
                time.monotonic() - self.activated[name][1] >= profile.first_report_after
            )
            key = (digest, profile, due)
            if self.reported.get(name) == key:
                continue
            self._report(name, told, profile, health=due)
            self.reported[name] = key

    def _report(
        self, name: str, told: tuple[str, str] | None, p: Profile | None, *, health: bool = True
    ) -> None:
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
                if not health or ((p.fail or p.silent) and p.window == "5m")
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


@pytest.fixture
def fleet(api: Api) -> Iterator[FleetDriver]:
    driver = FleetDriver(api)
    yield driver
    driver.stop()


def desired_versions(api: Api, names: list[str] | None = None) -> dict[str, str | None]:
    """What each gateway is told for MODEL, by ``modelfleet.core.desired_state`` over the API."""
    releases = [parse_release(r) for r in api.releases()]
    gws = api.custom.list_namespaced_custom_object(GROUP, VERSION, api.namespace, "edgegateways")
    out: dict[str, str | None] = {}
    for item in gws["items"]:
        meta = item["metadata"]
        gw = Gateway(meta["name"], api.namespace, meta.get("labels") or {})
        a = desired_state(gw, releases).get(MODEL)
        out[meta["name"]] = None if a is None or a.snapshot is None else a.snapshot.version
    return out


@pytest.fixture(autouse=True)
def _no_proxy() -> None:
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


def establish(api: Api, fleet: FleetDriver, artifacts: Artifacts, version: str = "1.0.0",
              **kw: Any) -> dict[str, Any]:  # fmt: skip
    """Roll ``version`` out (gateways healthy) until it is ``stable``; the status.

    One step for everyone unless ``steps`` are given: the tests are about what comes next."""
    kw.setdefault("steps", [{"name": "all", "percent": 100, "bake": "1s"}])
    api.apply_release(release_body("detector", version, artifacts, **kw))

    def stable() -> dict[str, Any] | None:
        st = api.status("detector")
        ok = st.get("phase") == "Succeeded" and (st.get("stable") or {}).get("version") == version
        return st if ok else None

    result: dict[str, Any] = wait_for(stable, 60, what=f"{version} to become stable")
    return result


class StatusRecorder:
    """Watches one ModelRelease and keeps every status revision it sees (in order)."""

    def __init__(self, api: Api, name: str) -> None:
        from kubernetes import watch

        self.api = api
        self.name = name
        self.revisions: list[dict[str, Any]] = []
        self.objects: list[dict[str, Any]] = []
        """Every revision of the whole object (metadata and spec too), in order."""
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stopped = threading.Event()

    def _run(self) -> None:
        rv = "0"
        while not self._stopped.is_set():
            try:
                for event in self._watch.stream(
                    self.api.custom.list_namespaced_custom_object,
                    GROUP, VERSION, self.api.namespace, "modelreleases",
                    field_selector=f"metadata.name={self.name}",
                    resource_version=rv, timeout_seconds=30,
                ):  # fmt: skip
                    obj = event["object"]
                    rv = obj["metadata"]["resourceVersion"]
                    status = obj.get("status") or {}
                    if not self.revisions or self.revisions[-1] != status:
                        self.revisions.append(status)
                    self.objects.append(obj)
                    if self._stopped.is_set():
                        return
            except Exception:  # a restarted API server: watch again from where it was
                time.sleep(0.5)

    def start(self) -> StatusRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()
        self._thread.join(40)


@pytest.fixture
def http_base(artifacts: Artifacts) -> Iterator[str]:
    """The artifacts folder served over HTTP on a loopback port (``http://127.0.0.1:PORT``)."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    artifacts.root.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(Quiet, directory=str(artifacts.root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

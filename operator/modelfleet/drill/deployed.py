"""Drills against a deployed operator and fleet API (``modelfleet drill --deployed``).

The drill starts neither: it uses the ones already running for the cluster of ``--kubeconfig``.
What it brings is what a user brings to a real rollout: signed artifacts (served over HTTP by
:class:`ArtifactServer`, on an address the user names, reachable by the operator and the
gateways), a TrustPolicy trusting only the drill's key in the drill namespace, and simulated
gateways enrolled against the deployed fleet API (its CA read from the cluster).

* :func:`preflight`: one actionable line per problem before anything is created: the CRDs, the
  operator's leader Lease, the fleet API answering TLS with a certificate of the fleet CA, the
  namespace watched by the operator (a probe ModelRelease it must act on).
* :func:`kill_operator` and :func:`wait_lease_taken`: the operator-crash fault: delete the
  operator's Pods by label selector (their Deployment recreates them) or run the user's restart
  command, then wait until the Lease is held by a new identity.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import http.server
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelfleet.demo.watch import GROUP, VERSION
from modelfleet.errors import ConfigError, ModelfleetError

CRDS = ("modelreleases", "edgegateways", "trustpolicies")
#: The fleet CA's Secret in the operator's namespace (``modelfleet fleet-ca init``); only its
#: public ``ca.crt`` is read here, to check the fleet API's certificate.
FLEET_CA_SECRET = "modelfleet-fleet-ca"
PROBE = "drill-preflight"


@dataclass(frozen=True)
class DeployedSettings:
    """Where the deployed parts are and how to reach them (``modelfleet drill --deployed``;
    the fields are its flags)."""

    fleet_url: str
    serve_artifacts: str = "127.0.0.1:0"  # HOST:PORT the drill serves artifacts on
    artifact_url_base: str | None = None  # how the cluster reaches it (default http://HOST:PORT)
    operator_namespace: str = "modelfleet-system"  # its Pods, its Lease, the fleet CA
    lease_name: str = "modelfleet-operator"
    operator_selector: str = "app.kubernetes.io/name=modelfleet-operator"
    operator_restart_command: str | None = None
    probe_timeout: float = 30.0  # how long the operator may take to act on the probe release
    restart_timeout: float = 120.0  # how long the Lease may take to be held again


class DeployedError(ModelfleetError):
    """The deployed operator did not come back, or its restart could not be made."""


# ----------------------------------------------------------------- artifacts
class ArtifactServer:
    """``root`` over plain HTTP on ``listen`` (HOST:PORT; port 0: a free one), with URLs under
    ``url_base`` (default ``http://HOST:PORT``): what the operator and the gateways fetch."""

    def __init__(
        self, root: Path, listen: str = "127.0.0.1:0", url_base: str | None = None
    ) -> None:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--serve-artifacts {listen!r}: expected HOST:PORT")
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        handler = functools.partial(_QuietHandler, directory=str(self.root))
        try:
            self.server = http.server.ThreadingHTTPServer((host.strip("[]"), int(port)), handler)
        except OSError as exc:
            raise ConfigError(f"--serve-artifacts {listen}: cannot listen: {exc}") from exc
        bound = self.server.server_address[1]
        self.url_base = (url_base or f"http://{host}:{bound}").rstrip("/")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def authority(self) -> str:
        return urlsplit(self.url_base).netloc

    def url(self, path: Path) -> str:
        return f"{self.url_base}/{path.resolve().relative_to(self.root).as_posix()}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


# ----------------------------------------------------------------- the Lease
@dataclass(frozen=True)
class LeaseState:
    holder: str
    renew: str
    duration: float

    def fresh(self, now: dt.datetime) -> bool:
        """Renewed within its duration by our clock (a few seconds of skew allowed)."""
        if not self.holder or not self.renew:
            return False
        renewed = dt.datetime.fromisoformat(self.renew.replace("Z", "+00:00"))
        return (now - renewed).total_seconds() <= self.duration + 5


def read_lease(api: Any, namespace: str, name: str) -> LeaseState | None:
    """The Lease's holder, last renewal and duration; None when there is no such Lease."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        coordination: Any = client.CoordinationV1Api(api)
        lease = coordination.read_namespaced_lease(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    spec = lease.spec
    renew = spec.renew_time.isoformat() if spec.renew_time else ""
    return LeaseState(spec.holder_identity or "", renew, float(spec.lease_duration_seconds or 15))


def leader_live(api: Any, s: DeployedSettings) -> str | None:
    """None when the Lease is held and renewed; else what is wrong, as one actionable line.
    A renewal seen by our clock to be old is watched for one renewal period before judging
    (the clocks of this machine and the cluster may differ)."""
    where = f"{s.operator_namespace}/{s.lease_name}"
    lease = read_lease(api, s.operator_namespace, s.lease_name)
    if lease is None:
        return (
            f"no Lease {where}: is the operator deployed and running with --leader-elect "
            "(--operator-namespace / --lease-name name another)?"
        )
    if not lease.holder:
        return f"Lease {where} is held by nobody: no operator replica is leading; check its Pods"
    if lease.fresh(dt.datetime.now(dt.UTC)):
        return None
    deadline = time.monotonic() + lease.duration / 3 + 2
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = read_lease(api, s.operator_namespace, s.lease_name)
        if now is not None and now.holder and now.renew != lease.renew:
            return None
    return (
        f"Lease {where} (holder {lease.holder}) was last renewed {lease.renew} and not since: "
        "the operator is not live; check its Pods and logs"
    )


def wait_lease_taken(api: Any, s: DeployedSettings, before: str, timeout: float) -> str:
    """Wait until the Lease is held by an identity other than ``before``; the new holder."""
    deadline = time.monotonic() + timeout
    while True:
        lease = read_lease(api, s.operator_namespace, s.lease_name)
        if lease is not None and lease.holder and lease.holder != before:
            return lease.holder
        if time.monotonic() > deadline:
            held = lease.holder if lease is not None else "no Lease"
            raise DeployedError(
                f"Lease {s.operator_namespace}/{s.lease_name} not taken by a new operator "
                f"within {timeout:.0f}s of the restart (holder: {held or 'nobody'})"
            )
        time.sleep(0.3)


class LeaseWatch:
    """Notices, during a drill, that the deployed operator stopped renewing its Lease (it died
    and nothing restarted it): a clear error instead of a rollout that waits for nobody. Only
    this machine's clock is used: the record must change within its duration (plus 5 s)."""

    def __init__(self, api: Any, s: DeployedSettings, every: float = 5.0) -> None:
        self.api, self.s, self.every = api, s, every
        self._seen: tuple[str, str] | None = None
        self._since = self._next = time.monotonic()

    def check(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        lease = read_lease(self.api, self.s.operator_namespace, self.s.lease_name)
        record = (lease.holder, lease.renew) if lease is not None else ("", "")
        if record != self._seen:
            self._seen, self._since = record, now
            return
        duration = lease.duration if lease is not None else 15.0
        if now - self._since > duration + 5:
            raise DeployedError(
                f"the deployed operator stopped renewing its Lease {self.s.operator_namespace}/"
                f"{self.s.lease_name} (holder {record[0] or 'nobody'}, last renewed "
                f"{record[1] or 'never'}): it is down and was not restarted; check its Pods "
                "and logs"
            )


# ----------------------------------------------------------------- the crash
def operator_pods(api: Any, s: DeployedSettings) -> list[str]:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(s.operator_namespace, label_selector=s.operator_selector)
    return [p.metadata.name for p in pods.items if not p.metadata.deletion_timestamp]


def kill_operator(api: Any, s: DeployedSettings) -> tuple[str, str]:
    """Crash the deployed operator: run ``operator_restart_command`` (``sh -c``), else delete
    every Pod matching ``operator_selector`` at once (grace period 0: a crash, not a drain), for
    their Deployment to recreate. What was done, and the Lease's holder before it (for
    :func:`wait_lease_taken`)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    lease = read_lease(api, s.operator_namespace, s.lease_name)
    before = lease.holder if lease is not None else ""
    if s.operator_restart_command:
        done = subprocess.run(
            s.operator_restart_command, shell=True, capture_output=True, text=True, check=False,
            timeout=s.restart_timeout,
        )  # fmt: skip
        if done.returncode != 0:
            tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:]
            raise DeployedError(
                f"--operator-restart-command exited {done.returncode}: {' '.join(tail)}"
            )
        return "operator crashed and restarted by --operator-restart-command", before
    names = operator_pods(api, s)
    if not names:
        raise DeployedError(
            f"no Pods match {s.operator_selector} in {s.operator_namespace} to delete"
        )
    core: Any = client.CoreV1Api(api)
    for name in names:
        with contextlib.suppress(ApiException):  # gone already
            core.delete_namespaced_pod(name, s.operator_namespace, grace_period_seconds=0)
    return f"operator Pods deleted mid-rollout ({', '.join(names)})", before


# ----------------------------------------------------------------- preflight
def fleet_api_answers(api: Any, s: DeployedSettings) -> str | None:
    """None when a TLS handshake with ``fleet_url`` verifies its certificate against the fleet
    CA (host name included); else one actionable line."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    url = urlsplit(s.fleet_url)
    if url.scheme != "https" or not url.hostname:
        return f"--fleet-api {s.fleet_url!r}: expected https://HOST[:PORT] (the fleet API is mTLS)"
    try:
        core: Any = client.CoreV1Api(api)
        secret = core.read_namespaced_secret(FLEET_CA_SECRET, s.operator_namespace)
    except ApiException as exc:
        return (
            f"cannot read the fleet CA (Secret {s.operator_namespace}/{FLEET_CA_SECRET}: "
            f"{exc.status} {exc.reason}); run `modelfleet fleet-ca init --namespace "
            f"{s.operator_namespace}` or name the right --operator-namespace"
        )
    ca = base64.b64decode((secret.data or {}).get("ca.crt", "")).decode()
    ctx = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
    port = url.port or 443
    try:
        with (
            socket.create_connection((url.hostname, port), timeout=5) as sock,
            ctx.wrap_socket(sock, server_hostname=url.hostname) as tls,
        ):
            tls.version()
    except ssl.SSLCertVerificationError as exc:
        return (
            f"the fleet API at {s.fleet_url} does not present a certificate of the fleet CA for "
            f"{url.hostname} ({exc.verify_message}); give a --fleet-api URL whose host is in its "
            "certificate (`modelfleet fleet-ca init --dns/--ip` adds names)"
        )
    except ssl.SSLError:
        return None  # the handshake got as far as asking us for a client certificate
    except OSError as exc:
        return f"the fleet API at {s.fleet_url} does not answer ({exc}); check --fleet-api"
    return None


def crds_installed(api: Any) -> str | None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    ext: Any = client.ApiextensionsV1Api(api)
    missing = []
    for plural in CRDS:
        try:
            ext.read_custom_resource_definition(f"{plural}.{GROUP}")
        except ApiException as exc:
            if exc.status != 404:
                raise
            missing.append(plural)
    if not missing:
        return None
    return f"CRDs not installed: {', '.join(missing)}; apply crds/ (kubectl apply -k manifests)"


def namespace_watched(api: Any, namespace: str, s: DeployedSettings) -> str | None:
    """Create a probe ModelRelease (naming a TrustPolicy that does not exist, selecting no
    gateway) and wait for the operator to write its status; deleted either way."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    custom: Any = client.CustomObjectsApi(api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelRelease",
        "metadata": {"name": PROBE},
        "spec": {
            "model": PROBE,
            "version": "0.0.0",
            "artifact": {
                "uri": "https://preflight.invalid/probe.tar",
                "digest": "sha256:" + "0" * 64,
            },
            "trustPolicy": f"{PROBE}-does-not-exist",
            "gateways": {"selector": {"matchLabels": {"modelfleet.dev/drill-preflight": "none"}}},
            "rollout": {"steps": [{"name": "none", "percent": 100}]},
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "modelreleases", body)
    try:
        deadline = time.monotonic() + s.probe_timeout
        while time.monotonic() < deadline:
            got = custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "modelreleases", PROBE
            )
            if (got.get("status") or {}).get("phase"):
                return None
            time.sleep(0.5)
    finally:
        with contextlib.suppress(ApiException):
            custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "modelreleases", PROBE
            )
    return (
        f"the operator did not act on a ModelRelease in namespace {namespace} within "
        f"{s.probe_timeout:.0f}s: it does not watch it; run it with --all-namespaces or add "
        f"--namespace={namespace} to its args"
    )


def preflight(api: Any, namespace: str, s: DeployedSettings) -> list[str]:
    """Every problem found, one actionable line each (empty: ready). The namespace must exist
    (the probe release is created in it); the probe runs only when the rest holds."""
    crds = crds_installed(api)
    if crds:
        return [crds]
    problems = [p for p in (leader_live(api, s), fleet_api_answers(api, s)) if p]
    if not problems:
        watched = namespace_watched(api, namespace, s)
        problems += [watched] if watched else []
    return problems

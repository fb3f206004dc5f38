"""A real, local Kubernetes control plane: etcd + kube-apiserver on free loopback ports.

Used by the test suite (a session fixture), by ``modelfleet dev-cluster up|down`` and by the demo.
It follows controller-runtime's envtest: RBAC authorization, client-certificate authentication
with an admin user in ``system:masters``, no controller-manager (so namespaces are finalized
explicitly, see :meth:`ControlPlane.delete_namespace`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from modelfleet.devcluster.assets import Assets, find_assets, use_existing_cluster
from modelfleet.devcluster.pki import ControlPlanePKI, write_pki
from modelfleet.errors import ClusterError

log = logging.getLogger(__name__)

CRDS_DIR = Path(__file__).resolve().parent.parent / "crds"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(
    url: str,
    ctx: ssl.SSLContext | None,
    timeout: float,
    proc: subprocess.Popen[bytes],
    log_path: Path,
) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise ClusterError(f"{log_path.stem} exited with {proc.returncode}: {tail}")
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise ClusterError(f"{url} not ready after {timeout:.0f}s: {last}")


def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


# One audit event per request, when it completed; metadata only (no bodies).
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
"""


@dataclass
class ControlPlane:
    """etcd + kube-apiserver in ``workdir``; ``start()`` / ``stop()``; usable as a context manager.

    With ``existing=True`` nothing is started: the current kubeconfig is used (envtest's
    ``USE_EXISTING_CLUSTER=true``) and ``stop()`` leaves the cluster alone.
    """

    workdir: Path | None = None
    assets: Assets | None = None
    existing: bool = False
    keep_workdir: bool = False
    etcd_port: int = 0
    etcd_peer_port: int = 0
    apiserver_port: int = 0
    pki: ControlPlanePKI | None = None
    # Write the API server's audit log (metadata of every request: who, verb, resource, name,
    # response code) to ``workdir/audit.log``: what a process really used of its RBAC.
    audit: bool = False
    etcd: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    apiserver: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _kubeconfig: Path | None = None
    _own_workdir: bool = False

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def from_environment(cls, *, build: bool = False) -> ControlPlane:
        """A control plane as the envtest conventions in the environment ask for."""
        if use_existing_cluster():
            return cls(existing=True)
        return cls(assets=find_assets(build=build))

    def start(self, *, detach: bool = False) -> ControlPlane:
        """Start etcd and kube-apiserver, write the admin kubeconfig, install the CRDs."""
        if self.existing:
            self._kubeconfig = Path(
                os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
                or Path.home() / ".kube" / "config"
            )
            self.install_crds()
            return self
        if self.assets is None:
            self.assets = find_assets()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="modelfleet-cp-"))
            self._own_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.pki = write_pki(self.workdir / "pki")
            self.etcd_port, self.etcd_peer_port, self.apiserver_port = (
                free_port(),
                free_port(),
                free_port(),
            )
            self._start_etcd(detach)
            self.start_apiserver(detach=detach)
            self._write_kubeconfig()
            self.install_crds()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_etcd(self, detach: bool) -> None:
        assert self.assets is not None and self.workdir is not None
        url = f"http://127.0.0.1:{self.etcd_port}"
        args = [
            str(self.assets.etcd),
            "--name=modelfleet",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
            f"--initial-cluster=modelfleet=http://127.0.0.1:{self.etcd_peer_port}",
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ]
        log_path = self.workdir / "etcd.log"
        self.etcd = self._spawn(args, log_path, detach)
        _wait_http(f"{url}/health", None, START_TIMEOUT, self.etcd, log_path)

    def start_apiserver(self, *, detach: bool = False) -> None:
        """(Re)start kube-apiserver on the same port with the same certificates and data."""
        assert self.assets is not None and self.workdir is not None and self.pki is not None
        pki = self.pki
        args = [
            str(self.assets.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--secure-port={self.apiserver_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            f"--service-account-issuer=https://127.0.0.1:{self.apiserver_port}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--max-requests-inflight=1000",
            "--max-mutating-requests-inflight=500",
            # On SIGTERM, close open watches after a second instead of waiting for each to end
            # (up to --min-request-timeout): a stop takes about a second, not half a minute.
            "--shutdown-watch-termination-grace-period=1s",
            "--v=0",
        ]
        if self.audit:
            policy = self.workdir / "audit-policy.yaml"
            policy.write_text(AUDIT_POLICY)
            args += [
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
            ]
        log_path = self.workdir / "kube-apiserver.log"
        self.apiserver = self._spawn(args, log_path, detach)
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        _wait_http(
            f"https://127.0.0.1:{self.apiserver_port}/readyz",
            ctx,
            START_TIMEOUT,
            self.apiserver,
            log_path,
        )

    def stop_apiserver(self, *, kill: bool = False) -> None:
        """Stop kube-apiserver only (etcd keeps the data), e.g. to test reconnection."""
        if kill and self.apiserver is not None and self.apiserver.poll() is None:
            os.killpg(self.apiserver.pid, signal.SIGKILL)
            self.apiserver.wait(5)
        _terminate(self.apiserver)
        self.apiserver = None

    def stop(self) -> None:
        """Stop everything this object started and remove its files."""
        if self.existing:
            return
        _terminate(self.apiserver)
        _terminate(self.etcd)
        self.apiserver = self.etcd = None
        if self.workdir is not None and self._own_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _spawn(args: list[str], log_path: Path, detach: bool) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as out:
            # A process group of its own: stop() kills the whole group, and Ctrl-C in the
            # terminal of `dev-cluster up` does not reach a detached cluster.
            return subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )

    # ----------------------------------------------------------------- clients
    @property
    def audit_log(self) -> Path:
        """The audit log (JSON lines) when started with ``audit=True``."""
        assert self.workdir is not None
        return self.workdir / "audit.log"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        if self._kubeconfig is None:
            raise ClusterError("the control plane is not started")
        return self._kubeconfig

    @property
    def env(self) -> dict[str, str]:
        """``os.environ`` plus ``KUBECONFIG`` pointing at this control plane."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    @property
    def kubectl_path(self) -> str:
        if self.assets is not None:
            return str(self.assets.kubectl)
        found = shutil.which("kubectl")
        if not found:
            raise ClusterError("kubectl not found on PATH")
        return found

    def _write_kubeconfig(self) -> None:
        assert self.workdir is not None and self.pki is not None
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "modelfleet-dev",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(self.pki.admin_cert),
                        "client-key": str(self.pki.admin_key),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "modelfleet-dev",
                    "context": {"cluster": "modelfleet-dev", "user": "admin"},
                }
            ],
            "current-context": "modelfleet-dev",
        }
        path = self.workdir / "kubeconfig"
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        self._kubeconfig = path

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane; text in and out."""
        proc = subprocess.run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    # ----------------------------------------------------------------- objects
    def install_crds(self, crds_dir: Path = CRDS_DIR) -> None:
        """Apply every CRD in ``crds_dir`` and wait until each is Established."""
        files = sorted(crds_dir.glob("*.yaml"))
        names = [yaml.safe_load(f.read_text())["metadata"]["name"] for f in files]
        args: list[str] = ["apply", "--server-side", "--force-conflicts"]
        for f in files:
            args += ["-f", str(f)]
        self.kubectl(*args)
        self.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            *[f"crd/{n}" for n in names],
        )  # fmt: skip

    def create_namespace(self, name: str) -> None:
        self.kubectl("create", "namespace", name)

    def delete_namespace(self, name: str, kinds: Sequence[str] = ()) -> None:
        """Delete the namespace for good: its custom objects first, then finalize it by hand,
        since no controller-manager runs here to do it."""
        kinds = kinds or ("modelreleases.modelfleet.dev", "edgegateways.modelfleet.dev")
        for kind in kinds:
            self.kubectl("delete", kind, "--all", "-n", name, "--wait=false", check=False)
            # Objects a test left with finalizers (e.g. kopf's) would otherwise stay forever.
            listed = self.kubectl("get", kind, "-n", name, "-o", "name", check=False)
            for obj in listed.stdout.split():
                self.kubectl(
                    "patch", obj, "-n", name, "--type=merge",
                    "-p", '{"metadata":{"finalizers":null}}', check=False,
                )  # fmt: skip
        self.kubectl("delete", "namespace", name, "--wait=false", check=False)
        body = json.dumps(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
             "spec": {"finalizers": []}}
        )  # fmt: skip
        self.kubectl(
            "replace", "--raw", f"/api/v1/namespaces/{name}/finalize", "-f", "-",
            input=body, check=False,
        )  # fmt: skip

    @contextlib.contextmanager
    def namespace(self, name: str) -> Iterator[str]:
        self.create_namespace(name)
        try:
            yield name
        finally:
            self.delete_namespace(name)

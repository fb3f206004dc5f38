"""Least privilege of the shipped manifests (manifests/), proven against the real API server.

Every ServiceAccount of manifests/ (operator, fleet API, sync) is installed as shipped. Each one
is checked twice: ``kubectl auth can-i --as=system:serviceaccount:NS:SA`` (what RBAC grants),
and a real run of the process with a token of that ServiceAccount from the TokenRequest API
(``kubectl create token``): its legitimate reads work, and a read of the fleet CA's private key
Secret is 403.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from modelfleet.devcluster import ControlPlane, free_port
from modelfleet.fleet.process import start_fleet_api
from modelfleet.fleet.secrets import CA_SECRET, TLS_SECRET
from tests.kubekit import fleet_pki
from tests.trustkit import make_key, make_signed_model

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
SYSTEM = "modelfleet-system"
TRUST_SECRET = "modelfleet-trust-material"
OPERATOR = "modelfleet-operator"
FLEET_API = "modelfleet-fleet-api"
SYNC = "modelfleet-sync"
GROUP, VERSION = "modelfleet.dev", "v1alpha1"


def sa(name: str) -> str:
    return f"system:serviceaccount:{SYSTEM}:{name}"


@dataclass
class Installed:
    cp: ControlPlane
    tenant: str  # a namespace the sync is bound to (manifests/sync/namespace-binding.yaml)
    folder: Path

    def can(self, who: str, verb: str, resource: str, *extra: str) -> bool:
        """``kubectl auth can-i VERB RESOURCE``; RESOURCE is TYPE, TYPE/NAME or TYPE:SUBRESOURCE."""
        resource, _, sub = resource.partition(":")
        if sub:
            extra = (*extra, f"--subresource={sub}")
        out = self.cp.kubectl("auth", "can-i", verb, resource, f"--as={sa(who)}", *extra,
                              check=False)  # fmt: skip
        assert out.stdout.strip() in ("yes", "no"), out.stderr
        return out.stdout.strip() == "yes"

    def kubeconfig_for(self, account: str) -> Path:
        """A kubeconfig holding a token of ``account`` from the TokenRequest API."""
        token = self.cp.kubectl("create", "token", account, "-n", SYSTEM).stdout.strip()
        assert token.count(".") == 2  # a JWT
        admin = yaml.safe_load(self.cp.kubeconfig.read_text())
        cluster = admin["clusters"][0]
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [
                {"name": account, "context": {"cluster": cluster["name"], "user": account}}
            ],
            "current-context": account,
        }
        path = self.folder / f"{account}.kubeconfig"
        path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        path.chmod(0o600)
        return path

    def kubectl_as(self, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.cp.kubectl_path, f"--kubeconfig={kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def _apply(cp: ControlPlane, path: Path, **replace: str) -> None:
    text = path.read_text(encoding="utf-8")
    for old, new in replace.items():
        text = text.replace(old, new)
    cp.kubectl("apply", "-f", "-", input=text)


@pytest.fixture(scope="module")
def installed(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    cp = control_plane
    tenant = f"rbac-tenant-{secrets.token_hex(3)}"
    folder = tmp_path_factory.mktemp("rbac")
    binding = MANIFESTS / "sync" / "namespace-binding.yaml"
    files = [
        MANIFESTS / "operator" / "namespace.yaml",
        MANIFESTS / "operator" / "rbac.yaml",
        MANIFESTS / "fleet-api" / "fleet-api.yaml",
        MANIFESTS / "sync" / "rbac.yaml",
    ]
    cp.create_namespace(tenant)
    try:
        for f in files:
            _apply(cp, f)
        _apply(cp, binding, **{"namespace: fleet": f"namespace: {tenant}"})
        fleet_pki(cp.kubeconfig, SYSTEM)
        yield Installed(cp, tenant, folder)
    finally:
        for f in reversed(files[1:]):
            cp.kubectl("delete", "-f", str(f), "--wait=false", "--ignore-not-found", check=False)
        cp.delete_namespace(tenant)
        cp.delete_namespace(SYSTEM)


# --------------------------------------------------------------------------- kubectl auth can-i


@pytest.mark.parametrize("account", [OPERATOR, FLEET_API, SYNC])
@pytest.mark.parametrize("verb", ["get", "list", "watch"])
def test_no_service_account_can_read_the_fleet_ca_key(
    installed: Installed, account: str, verb: str
) -> None:
    assert not installed.can(account, verb, f"secrets/{CA_SECRET}", "-n", SYSTEM)
    assert not installed.can(account, verb, "secrets", "-n", SYSTEM)
    assert not installed.can(account, verb, "secrets", "-A")


def test_each_service_account_may_read_only_the_secrets_it_uses(installed: Installed) -> None:
    assert installed.can(FLEET_API, "get", f"secrets/{TLS_SECRET}", "-n", SYSTEM)
    assert not installed.can(FLEET_API, "get", f"secrets/{TRUST_SECRET}", "-n", SYSTEM)
    assert installed.can(OPERATOR, "get", f"secrets/{TRUST_SECRET}", "-n", SYSTEM)
    assert not installed.can(OPERATOR, "get", f"secrets/{TLS_SECRET}", "-n", SYSTEM)
    for account in (OPERATOR, FLEET_API, SYNC):
        for verb in ("create", "update", "patch", "delete"):
            assert not installed.can(account, verb, "secrets", "-n", SYSTEM)


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("create", "modelreleases.modelfleet.dev"),
        ("patch", "modelreleases.modelfleet.dev"),
        ("delete", "modelreleases.modelfleet.dev"),
        ("list", "modelreleases.modelfleet.dev"),
        ("create", "edgegateways.modelfleet.dev"),
        ("delete", "edgegateways.modelfleet.dev"),
    ],
)
def test_the_sync_may_manage_the_allowed_kinds_in_its_namespaces(
    installed: Installed, verb: str, resource: str
) -> None:
    assert installed.can(SYNC, verb, resource, "-n", installed.tenant)


@pytest.mark.parametrize(
    ("verb", "resource", "where"),
    [
        ("create", "modelreleases.modelfleet.dev", "other"),  # a namespace it is not bound to
        ("create", "modelreleases.modelfleet.dev", "kube-system"),
        ("patch", "modelreleases.modelfleet.dev:status", "tenant"),
        ("patch", "edgegateways.modelfleet.dev:status", "tenant"),
        ("create", "trustpolicies.modelfleet.dev", ""),  # only with sync/trustpolicies.yaml
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
        ("create", "rolebindings.rbac.authorization.k8s.io", "tenant"),
        ("create", "secrets", "tenant"),
        ("get", "secrets", "tenant"),
        ("create", "configmaps", "tenant"),
        ("create", "namespaces", ""),
        ("create", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ],
)
def test_the_sync_may_do_nothing_else(
    installed: Installed, verb: str, resource: str, where: str
) -> None:
    ns = {"tenant": installed.tenant, "other": "default"}.get(where, where)
    extra = ("-n", ns) if ns else ()
    assert not installed.can(SYNC, verb, resource, *extra)


# --------------------------------------------------------------------------- real runs


def test_the_fleet_api_runs_as_its_service_account_and_cannot_read_the_ca_key(
    installed: Installed,
) -> None:
    kubeconfig = installed.kubeconfig_for(FLEET_API)
    # The real process: reads its TLS Secret and the gateways with the token, and serves.
    server = start_fleet_api(
        kubeconfig=kubeconfig,
        namespace=installed.tenant,
        log_path=installed.folder / "fleet-api.log",
        extra_args=["--tls-namespace", SYSTEM],
    )
    try:
        with urllib.request.urlopen(f"{server.metrics_url}/healthz", timeout=5) as resp:
            assert resp.status == 200
    finally:
        server.stop()
    # The same token: the CA key Secret is 403, through kubectl and through the Python client.
    out = installed.kubectl_as(kubeconfig, "get", "secret", CA_SECRET, "-n", SYSTEM)
    assert out.returncode != 0 and "Forbidden" in out.stderr, out.stdout
    assert 'cannot get resource "secrets"' in out.stderr
    core = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(kubeconfig)))
    with pytest.raises(k8s.ApiException) as denied:
        core.read_namespaced_secret(CA_SECRET, SYSTEM)
    assert denied.value.status == 403
    assert core.read_namespaced_secret(TLS_SECRET, SYSTEM).data["tls.key"]


def _wait(predicate: Any, timeout: float = 120.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out: {last!r}")


def test_the_operator_runs_as_its_service_account_and_cannot_read_the_ca_key(
    installed: Installed,
) -> None:
    cp, ns = installed.cp, installed.tenant
    kubeconfig = installed.kubeconfig_for(OPERATOR)
    key = make_key()
    signed = make_signed_model(
        installed.folder / "model", key=key, content=b"weights\n" * 64, policy_name="unused"
    )
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TRUST_SECRET, "namespace": SYSTEM},
        "data": {"release.pub": base64.b64encode(pem.encode()).decode()},
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(secret))

    def policy(name: str, secret_name: str, key_name: str) -> dict[str, Any]:
        ref = {"name": secret_name, "namespace": SYSTEM, "key": key_name}
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TrustPolicy",
            "metadata": {"name": name},
            "spec": {"authorities": [{"name": "release-key", "key": {"secretRef": ref}}]},
        }

    good, stealing = f"legit-{ns}", f"steal-{ns}"
    cp.kubectl("apply", "-f", "-", input=json.dumps(policy(good, TRUST_SECRET, "release.pub")))
    cp.kubectl("apply", "-f", "-", input=json.dumps(policy(stealing, CA_SECRET, "ca.key")))

    def release(name: str, trust: str) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelRelease",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "model": name,
                "version": "1.0.0",
                "artifact": {
                    "uri": signed.artifact.as_uri(),
                    "digest": signed.digest,
                    "signature": {"uri": signed.signature.as_uri()},
                },
                "trustPolicy": trust,
                "rollout": {"steps": [{"name": "all", "percent": 100}]},
            },
        }

    cp.kubectl("apply", "-f", "-", input=json.dumps(release("detector", good)))
    cp.kubectl("apply", "-f", "-", input=json.dumps(release("thief", stealing)))
    log = (installed.folder / "operator.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelfleet",
            "-v",
            "operator",
            "--namespace",
            ns,
            "--interval",
            "1",
            "--kubeconfig",
            str(kubeconfig),
            "--material-namespace",
            SYSTEM,
            # The signed artifact is served as file:// from the test's folder (opted in).
            "--allow-file-root",
            str(signed.artifact.parent),
            "--metrics-port",
            str(free_port()),
            "--metrics-host",
            "127.0.0.1",
            "--liveness",
            "http://127.0.0.1:0/healthz",  # a free port, logged
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    log.close()
    custom = k8s.CustomObjectsApi(k8s_config.new_client_from_config(str(cp.kubeconfig)))

    def verification(name: str) -> dict[str, Any] | None:
        st = (
            custom.get_namespaced_custom_object(GROUP, VERSION, ns, "modelreleases", name).get(
                "status"
            )
            or {}
        )
        if st.get("phase") in (None, "Pending", "Verifying"):
            return None
        return {"phase": st.get("phase"), **(st.get("verification") or {})}

    try:
        legit = _wait(lambda: verification("detector"))
        thief = _wait(lambda: verification("thief"))
    finally:
        proc.terminate()
        proc.wait(20)
        cp.kubectl("delete", "trustpolicy", good, stealing, "--ignore-not-found", check=False)
        cp.kubectl("delete", "secret", TRUST_SECRET, "-n", SYSTEM, "--ignore-not-found")
    logs = (installed.folder / "operator.log").read_text(errors="replace")
    # Its legitimate read (the TrustPolicy's key Secret) works: the release is verified.
    assert legit["verified"] is True, (legit, logs[-3000:])
    assert legit["phase"] in ("Progressing", "Succeeded")
    # A TrustPolicy pointing it at the CA key gets a 403 from the API server: Rejected.
    assert thief["phase"] == "Rejected" and thief["verified"] is False
    assert "403" in thief["reason"] and CA_SECRET in thief["reason"], thief
    out = installed.kubectl_as(kubeconfig, "get", "secret", CA_SECRET, "-n", SYSTEM)
    assert out.returncode != 0 and "Forbidden" in out.stderr


def test_the_sync_runs_as_its_service_account(installed: Installed, tmp_path: Path) -> None:
    """``modelfleet sync`` with a modelfleet-sync token applies a release in its namespace; a
    ClusterRoleBinding is refused by the sync itself and would be 403 from RBAC anyway."""
    ns = installed.tenant
    kubeconfig = installed.kubeconfig_for(SYNC)
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "Bot",
        "GIT_AUTHOR_EMAIL": "bot@example.com",
        "GIT_COMMITTER_NAME": "Bot",
        "GIT_COMMITTER_EMAIL": "bot@example.com",
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)

    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelRelease",
        "metadata": {"name": "synced", "namespace": ns},
        "spec": {
            "model": "detector",
            "version": "1.0.0",
            "artifact": {
                "uri": "https://models.example.com/detector.tar",
                "digest": "sha256:" + "1" * 64,
            },
            "trustPolicy": "prod",
            "rollout": {"steps": [{"name": "all", "percent": 100}]},
        },
    }
    git("init", "-q", "-b", "main")
    (repo / "detector.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    git("add", ".")
    git("commit", "-q", "-m", "detector")

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "modelfleet",
                "sync",
                repo.as_uri(),
                "--ref",
                "main",
                "--name",
                "rbac",
                "--namespace",
                ns,
                "--cache-dir",
                str(tmp_path / "cache"),
                "--kubeconfig",
                str(kubeconfig),
                "--json",
                *extra,
            ],
            env={**env, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = run("--prune")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["applied"] == [f"ModelRelease {ns}/synced"]
    (repo / "detector.yaml").unlink()
    git("add", "-A")
    git("commit", "-q", "-m", "retire detector")
    second = run("--prune", "--allow-empty")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["pruned"] == [f"ModelRelease {ns}/synced"]
    out = installed.kubectl_as(kubeconfig, "get", "secret", CA_SECRET, "-n", SYSTEM)
    assert out.returncode != 0 and "Forbidden" in out.stderr
    crb = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"sync-escalation-{ns}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": SYNC, "namespace": SYSTEM}],
    }  # fmt: skip
    forbidden = subprocess.run(
        [installed.cp.kubectl_path, f"--kubeconfig={kubeconfig}", "create", "-f", "-"],
        input=json.dumps(crb),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert forbidden.returncode != 0 and "Forbidden" in forbidden.stderr

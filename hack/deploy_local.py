"""Deploy manifests/ to a dev cluster and run the operator and the fleet API as containers, the
way their pods would run (``hack/deploy-local.sh``, ``make deploy-local``).

``up`` applies ``kubectl apply --server-side -k manifests``, makes the fleet CA and the fleet API's
certificate (``modelfleet fleet-ca init``, as an admin would), then starts each Deployment of
the rendered manifests with ``podman run --network=host``:

* the container's ``command``/``args``/``env`` as rendered, then the overrides below;
* a token of its ServiceAccount from the TokenRequest API (``kubectl create token``) with the
  cluster CA and the namespace at /var/run/secrets/kubernetes.io/serviceaccount, and
  ``KUBERNETES_SERVICE_HOST``/``PORT``: in-cluster configuration, no kubeconfig;
* its securityContext: ``--user`` runAsUser:runAsGroup, ``--read-only`` for
  readOnlyRootFilesystem (without podman's own tmpfs mounts), ``--cap-drop ALL``,
  no-new-privileges; each emptyDir a ``--tmpfs`` (memory limits are not applied).

Pods have a network namespace each; on the host network the pod's fixed ports (8080, 8443, 9090)
would collide, so every port is moved to a free loopback one by appending ``--liveness``,
``--metrics-*``, ``--host``/``--port`` (the last value of an option wins). Extra arguments for
a role come from ``--operator-arg`` / ``--fleet-api-arg``. ``up`` waits for both ``/readyz`` and
prints a JSON document: the fleet API's URL, the probe URLs, the container names, the seconds
from ``podman run`` to ``/readyz`` 200. ``down`` removes the containers of a state file.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "modelfleet-system"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
ROLES = {"operator": "modelfleet-operator", "fleet-api": "modelfleet-fleet-api"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(argv: list[str], **kw: Any) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300, **kw)
    if done.returncode != 0:
        raise SystemExit(
            f"deploy-local: {' '.join(argv[:3])} failed: {done.stderr.strip()[-2000:]}"
        )
    return done.stdout


class Cluster:
    def __init__(self, kubeconfig: Path, kubectl: str) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl_path = kubectl
        cfg = yaml.safe_load(kubeconfig.read_text())
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        self.server = urlsplit(cluster["server"])
        if "certificate-authority-data" in cluster:
            self.ca_pem = base64.b64decode(cluster["certificate-authority-data"])
        else:
            ca = Path(cluster["certificate-authority"])
            if not ca.is_absolute():
                ca = kubeconfig.parent / ca
            self.ca_pem = ca.read_bytes()

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return run([self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args], input=stdin)


def podman(*args: str) -> str:
    return run(["bash", str(ROOT / "hack" / "podman.sh"), *args])


def containers(rendered: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{role: {"container": ..., "pod": pod spec}}`` of the rendered Deployments."""
    out: dict[str, dict[str, Any]] = {}
    for doc in rendered:
        if doc.get("kind") != "Deployment":
            continue
        spec = doc["spec"]["template"]["spec"]
        for role, account in ROLES.items():
            if spec.get("serviceAccountName") == account:
                out[role] = {"container": spec["containers"][0], "pod": spec}
    missing = set(ROLES) - set(out)
    if missing:
        raise SystemExit(f"deploy-local: no Deployment in manifests/ for {sorted(missing)}")
    return out


def podman_flags(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """The securityContext, emptyDirs and env of a pod spec as ``podman run`` flags."""
    psc = pod.get("securityContext") or {}
    csc = container.get("securityContext") or {}
    user = csc.get("runAsUser", psc.get("runAsUser"))
    group = csc.get("runAsGroup", psc.get("runAsGroup"))
    flags: list[str] = []
    if user is not None:
        flags += ["--user", f"{user}:{group if group is not None else user}"]
    if csc.get("readOnlyRootFilesystem"):
        # and no tmpfs of podman's own on /tmp, /var/tmp, /run: only the pod's emptyDirs
        flags += ["--read-only", "--read-only-tmpfs=false"]
    for cap in (csc.get("capabilities") or {}).get("drop") or ():
        flags += ["--cap-drop", cap]
    if csc.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    volumes = {v["name"]: v for v in pod.get("volumes") or ()}
    for mount in container.get("volumeMounts") or ():
        vol = volumes.get(mount["name"]) or {}
        if "emptyDir" in vol:
            flags += ["--tmpfs", f"{mount['mountPath']}:rw,nosuid,nodev,mode=1777"]
    # The downward API fields the manifests use, as the kubelet would fill them in.
    fields = {"metadata.namespace": SYSTEM, "metadata.name": f"{container['name']}-local-0"}
    for env in container.get("env") or ():
        path = (env.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
        if "value" in env:
            flags += ["--env", f"{env['name']}={env['value']}"]
        elif path in fields:
            flags += ["--env", f"{env['name']}={fields[path]}"]
    return flags


def wait_ready(url: str, name: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        state = podman("inspect", "--format", "{{.State.Status}}", name).strip()
        if state != "running":
            logs = subprocess.run(["bash", str(ROOT / "hack" / "podman.sh"), "logs", name],
                                  capture_output=True, text=True, check=False)  # fmt: skip
            raise SystemExit(
                f"deploy-local: {name} {state}:\n{(logs.stdout + logs.stderr)[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise SystemExit(f"deploy-local: {name}: {url} not 200 after {timeout:.0f}s")
        time.sleep(0.1)


def up(args: argparse.Namespace) -> dict[str, Any]:
    cluster = Cluster(args.kubeconfig, args.kubectl)
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "manifests"))
    run([sys.executable, "-m", "modelfleet", "fleet-ca", "init", "--namespace", SYSTEM,
         "--kubeconfig", str(args.kubeconfig), "--ca-out", str(workdir / "fleet-ca.crt")],
        cwd=workdir)  # fmt: skip
    rendered = list(yaml.safe_load_all(cluster.kubectl("kustomize", str(ROOT / "manifests"))))
    found = containers(rendered)
    suffix = secrets.token_hex(3)
    state: dict[str, Any] = {"containers": [], "startup": {}}
    fleet_port, fleet_metrics, health, op_metrics = (free_port() for _ in range(4))
    overrides = {
        "fleet-api": [
            "--host", "127.0.0.1", "--port", str(fleet_port),
            "--metrics-host", "127.0.0.1", "--metrics-port", str(fleet_metrics),
            *args.fleet_api_arg,
        ],
        "operator": [
            f"--liveness=http://127.0.0.1:{health}/healthz",
            "--metrics-host", "127.0.0.1", f"--metrics-port={op_metrics}",
            *args.operator_arg,
        ],
    }  # fmt: skip
    readyz = {
        "fleet-api": f"http://127.0.0.1:{fleet_metrics}/readyz",
        "operator": f"http://127.0.0.1:{health}/readyz",
    }
    state_file = workdir / "deploy-local.json"
    for role in ("fleet-api", "operator"):
        pod, container = found[role]["pod"], found[role]["container"]
        account = pod["serviceAccountName"]
        sa = workdir / role / "serviceaccount"
        sa.mkdir(parents=True, exist_ok=True)
        token = cluster.kubectl("create", "token", account, "-n", SYSTEM, "--duration=2h")
        (sa / "token").write_text(token.strip())
        (sa / "ca.crt").write_bytes(cluster.ca_pem)
        (sa / "namespace").write_text(SYSTEM)
        for f in sa.iterdir():
            f.chmod(0o644)  # the container's uid reads them (a pod's projected volume does too)
        name = f"modelfleet-{role}-{suffix}"
        command = list(container.get("command") or ())
        argv = [*command[1:], *(container.get("args") or ()), *overrides[role]]
        entry = ["--entrypoint", command[0]] if command else []
        cmd = [
            "run", "--detach", "--name", name, "--network=host", "--http-proxy=false",
            "--volume", f"{sa}:{SA_DIR}:ro,z",
            "--env", f"KUBERNETES_SERVICE_HOST={cluster.server.hostname}",
            "--env", f"KUBERNETES_SERVICE_PORT={cluster.server.port or 443}",
            *podman_flags(pod, container), *entry, args.image, *argv,
        ]  # fmt: skip
        started = time.monotonic()
        podman(*cmd)
        state["containers"].append(name)
        state_file.write_text(json.dumps(state))
        wait_ready(readyz[role], name)
        state["startup"][role] = round(time.monotonic() - started, 2)
        state["argv_" + role] = argv
    state.update(
        fleet_url=f"https://127.0.0.1:{fleet_port}",
        fleet_ca=str(workdir / "fleet-ca.crt"),
        readyz=readyz,
        healthz={
            "fleet-api": f"http://127.0.0.1:{fleet_metrics}/healthz",
            "operator": f"http://127.0.0.1:{health}/healthz",
        },
    )
    state_file.write_text(json.dumps(state, indent=2))
    return state


def down(args: argparse.Namespace) -> None:
    state_file: Path = args.workdir / "deploy-local.json"
    if not state_file.exists():
        return
    for name in reversed(json.loads(state_file.read_text())["containers"]):
        subprocess.run(["bash", str(ROOT / "hack" / "podman.sh"), "rm", "--force",
                        "--time", "10", name], capture_output=True, check=False)  # fmt: skip
    state_file.unlink()


def main() -> None:
    p = argparse.ArgumentParser(prog="deploy-local", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["up", "down"])
    p.add_argument("--kubeconfig", type=Path, default=os.environ.get("KUBECONFIG"))
    p.add_argument("--kubectl", default=os.environ.get("KUBECTL", "kubectl"))
    p.add_argument("--image", default=os.environ.get("IMAGE", "localhost/modelfleet:dev"))
    p.add_argument("--workdir", type=Path, default=Path(".deploy-local"))
    p.add_argument("--operator-arg", action="append", default=[])
    p.add_argument("--fleet-api-arg", action="append", default=[])
    args = p.parse_args()
    if args.action == "down":
        down(args)
        return
    if args.kubeconfig is None:
        raise SystemExit("deploy-local: no kubeconfig (--kubeconfig or $KUBECONFIG)")
    print(json.dumps(up(args), indent=2))


if __name__ == "__main__":
    main()

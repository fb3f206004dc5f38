"""Where the control-plane binaries (etcd, kube-apiserver, kubectl) come from.

controller-runtime's envtest conventions are honoured, in this order:

1. ``TEST_ASSET_ETCD``, ``TEST_ASSET_KUBE_APISERVER``, ``TEST_ASSET_KUBECTL``: one binary each;
2. ``KUBEBUILDER_ASSETS``: a folder holding the three;
3. the cache that ``make envtest`` (``build-envtest.sh``) fills, keyed by the versions pinned in
   ``envtest.versions``: ``$MODELFLEET_CACHE`` or ``~/.cache/modelfleet/envtest/k8s-V-etcd-V``.

``USE_EXISTING_CLUSTER=true`` bypasses all of this: the current kubeconfig is used instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from modelfleet.errors import ConfigError

HERE = Path(__file__).resolve().parent
VERSIONS_FILE = HERE / "envtest.versions"
BUILD_SCRIPT = HERE / "build-envtest.sh"
BINARIES = {"etcd": "TEST_ASSET_ETCD", "kube-apiserver": "TEST_ASSET_KUBE_APISERVER"}
BINARIES["kubectl"] = "TEST_ASSET_KUBECTL"


@dataclass(frozen=True)
class Assets:
    etcd: Path
    kube_apiserver: Path
    kubectl: Path


def pinned_versions() -> dict[str, str]:
    """The versions pinned in ``envtest.versions`` (``KUBERNETES_VERSION``, ``ETCD_VERSION``)."""
    out: dict[str, str] = {}
    for raw in VERSIONS_FILE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def cache_root() -> Path:
    base = os.environ.get("MODELFLEET_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "modelfleet"


def cached_assets_dir() -> Path:
    v = pinned_versions()
    return cache_root() / "envtest" / f"k8s-{v['KUBERNETES_VERSION']}-etcd-{v['ETCD_VERSION']}"


def use_existing_cluster() -> bool:
    return os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true"


def find_assets(*, build: bool = False) -> Assets:
    """Locate the three binaries; with ``build`` run the Go build when they are missing."""
    folder_env = os.environ.get("KUBEBUILDER_ASSETS")
    folder = Path(folder_env) if folder_env else cached_assets_dir()
    paths: dict[str, Path] = {}
    for name, env in BINARIES.items():
        explicit = os.environ.get(env)
        paths[name] = Path(explicit) if explicit else folder / name
    missing = [str(p) for p in paths.values() if not os.access(p, os.X_OK)]
    if missing and build and not folder_env:
        print(
            "modelfleet: building the local control plane from Go modules "
            "(first time only, several minutes)...",
            file=sys.stderr,
            flush=True,
        )
        subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.DEVNULL)
        missing = [str(p) for p in paths.values() if not os.access(p, os.X_OK)]
    if missing:
        raise ConfigError(
            "control-plane binaries not found: "
            + ", ".join(missing)
            + " (run `make envtest`, set KUBEBUILDER_ASSETS to a folder with etcd, kube-apiserver"
            " and kubectl, or use USE_EXISTING_CLUSTER=true)"
        )
    return Assets(paths["etcd"], paths["kube-apiserver"], paths["kubectl"])

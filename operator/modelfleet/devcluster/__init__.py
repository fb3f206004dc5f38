"""A real local control plane (etcd + kube-apiserver built from Go modules) for tests, the demo
and users trying modelfleet without a cluster."""

from modelfleet.devcluster.assets import Assets, find_assets, pinned_versions, use_existing_cluster
from modelfleet.devcluster.controlplane import ControlPlane, free_port

__all__ = [
    "Assets",
    "ControlPlane",
    "find_assets",
    "free_port",
    "pinned_versions",
    "use_existing_cluster",
]

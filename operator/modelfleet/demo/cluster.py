"""Cluster housekeeping for a demo run on a cluster it did not start (``--kubeconfig`` or
``USE_EXISTING_CLUSTER=true``): refuse a namespace already in use, and remove what the demo
created afterwards (its ModelRelease, EdgeGateways, Secrets, namespace and TrustPolicy).

Works with and without a controller-manager: a namespace that is still there after a short
wait (a bare etcd + kube-apiserver never finalizes namespaces) is finalized through the API.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from modelfleet.demo.watch import GROUP, VERSION
from modelfleet.errors import ClusterError

KINDS = ("modelreleases", "edgegateways")


def _clients(api: Any) -> tuple[Any, Any]:
    from kubernetes import client

    return client.CustomObjectsApi(api), client.CoreV1Api(api)


def namespace_in_use(api: Any, namespace: str) -> list[str]:
    """Names of the modelfleet objects already in ``namespace`` (``kind/name``)."""
    custom, _ = _clients(api)
    found: list[str] = []
    for plural in KINDS:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]
        found += [f"{plural}/{i['metadata']['name']}" for i in items]
    return found


def delete_demo_objects(
    api: Any, namespace: str, *, trust_policy: str | None, delete_namespace: bool
) -> None:
    """Best-effort removal of what a demo created; errors are collected, then raised."""
    from kubernetes.client.exceptions import ApiException

    custom, core = _clients(api)
    problems: list[str] = []

    def attempt(what: str, call: Any, *args: Any) -> None:
        try:
            call(*args)
        except ApiException as exc:
            if exc.status != 404:
                problems.append(f"{what}: {exc.reason}")

    for plural in KINDS:
        attempt(
            plural, custom.delete_collection_namespaced_custom_object,
            GROUP, VERSION, namespace, plural,
        )  # fmt: skip
    if trust_policy:
        attempt(
            f"trustpolicy {trust_policy}", custom.delete_cluster_custom_object,
            GROUP, VERSION, "trustpolicies", trust_policy,
        )  # fmt: skip
    if delete_namespace:
        attempt(f"namespace {namespace}", core.delete_namespace, namespace)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _exists(core, namespace):
            time.sleep(0.5)
        if _exists(core, namespace):  # no namespace controller: finalize it ourselves
            body = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace},
                "spec": {"finalizers": []},
            }
            attempt(
                f"finalize namespace {namespace}", core.replace_namespace_finalize, namespace, body
            )
    if problems:
        raise ClusterError("cleanup incomplete: " + "; ".join(problems))


def _exists(core: Any, namespace: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    with contextlib.suppress(ApiException):
        core.read_namespace(namespace)
        return True
    return False

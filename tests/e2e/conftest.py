"""Fixtures of the end-to-end suite: the whole loop as real processes (``modelfleet.demo.stack``)
on the session's API server, one namespace per test.

* ``stack``: a :class:`~modelfleet.demo.stack.Stack` bound to the test's namespace on the
  ``control_plane`` (a local etcd + kube-apiserver, or the current kubeconfig with
  ``USE_EXISTING_CLUSTER=true``: ``make kind-e2e``); every process is stopped afterwards and, when
  the test failed, the end of each process log is printed.
* ``shelf``: signed versions of the ``detector`` model (file:// artifacts) and their TrustPolicy,
  named after the namespace (cluster-scoped, deleted afterwards).
* ``observer``: reads the release and the EdgeGateways back from the API server.

Against an existing cluster, an in-cluster modelfleet operator (``make kind-e2e`` deploys one
with ``--all-namespaces``) would reconcile the tests' releases too and cannot fetch the tests'
``file://`` artifacts; it is scaled to zero for the session and restored afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelfleet.demo.models import ModelShelf
from modelfleet.demo.stack import Stack
from modelfleet.demo.watch import Observer
from modelfleet.devcluster import ControlPlane

from .loop import MODEL


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture(scope="session", autouse=True)
def _no_in_cluster_operator(control_plane: ControlPlane) -> Iterator[None]:
    if not control_plane.existing:
        yield
        return
    from kubernetes import client

    from modelfleet.kube import api_client, load_access

    apps = client.AppsV1Api(api_client(load_access(control_plane.kubeconfig)))
    found = apps.list_deployment_for_all_namespaces(
        label_selector="app.kubernetes.io/name=modelfleet-operator"
    ).items
    scaled = [(d.metadata.namespace, d.metadata.name, d.spec.replicas or 0) for d in found]
    for ns, name, replicas in scaled:
        if replicas:
            print(f"e2e: scaling the in-cluster operator {ns}/{name} to 0", file=sys.stderr)
            apps.patch_namespaced_deployment_scale(name, ns, {"spec": {"replicas": 0}})
    try:
        yield
    finally:
        for ns, name, replicas in scaled:
            if replicas:
                apps.patch_namespaced_deployment_scale(name, ns, {"spec": {"replicas": replicas}})


@pytest.fixture
def stack(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    st = Stack(tmp_path / "stack", namespace, kubeconfig=control_plane.kubeconfig)
    try:
        yield st
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            for svc in st.services:
                sys.stderr.write(f"\n----- {svc.name} ({svc.log}) -----\n{svc.tail(60)}\n")
        st.stop()


@pytest.fixture
def shelf(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[ModelShelf]:
    models = ModelShelf(tmp_path / "models", model=MODEL, policy_name=f"signers-{namespace}")
    yield models
    control_plane.kubectl(
        "delete", "trustpolicy", models.policy_name, "--ignore-not-found", check=False
    )


@pytest.fixture
def observer(stack: Stack) -> Observer:
    return Observer(stack.api, stack.namespace, MODEL)

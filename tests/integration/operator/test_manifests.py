"""manifests/operator: applied to the real API server, and the ServiceAccount may do exactly
what the operator does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelfleet.devcluster import ControlPlane

from .cluster import ROOT

pytestmark = pytest.mark.cluster

MANIFESTS = ROOT / "manifests" / "operator"
SA = "system:serviceaccount:modelfleet-system:modelfleet-operator"


@pytest.fixture
def installed(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    control_plane.kubectl("apply", "-f", str(MANIFESTS / "namespace.yaml"))
    control_plane.kubectl("apply", "-f", str(MANIFESTS / "rbac.yaml"))
    try:
        yield control_plane
    finally:
        control_plane.kubectl("delete", "-f", str(MANIFESTS / "rbac.yaml"), "--wait=false",
                              check=False)  # fmt: skip
        control_plane.delete_namespace("modelfleet-system")


def can(cp: ControlPlane, verb: str, resource: str, *extra: str) -> bool:
    resource, _, sub = resource.partition("/")
    if sub:
        extra = (*extra, f"--subresource={sub}")
    out = cp.kubectl("auth", "can-i", verb, resource, f"--as={SA}", *extra, check=False)
    return out.stdout.strip() == "yes"


def test_the_deployment_is_accepted_by_the_api_server(installed: ControlPlane) -> None:
    out = installed.kubectl(
        "apply", "--dry-run=server", "-f", str(MANIFESTS / "deployment.yaml"), "-o", "yaml"
    )
    assert "ghcr.io/modelfleet/modelfleet:0.1.0" in out.stdout
    assert "--all-namespaces" in out.stdout


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("list", "modelreleases.modelfleet.dev"),
        ("watch", "edgegateways.modelfleet.dev"),
        ("get", "trustpolicies.modelfleet.dev"),
        ("patch", "modelreleases.modelfleet.dev/status"),
        ("create", "events"),
    ],
)
def test_the_operator_may_do_what_it_does(
    installed: ControlPlane, verb: str, resource: str
) -> None:
    assert can(installed, verb, resource, "-A")


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("patch", "modelreleases.modelfleet.dev"),
        ("update", "modelreleases.modelfleet.dev"),
        ("patch", "edgegateways.modelfleet.dev/status"),
        ("delete", "modelreleases.modelfleet.dev"),
        ("get", "secrets"),
    ],
)
def test_the_operator_may_not_write_specs_gateways_or_read_secrets_cluster_wide(
    installed: ControlPlane, verb: str, resource: str
) -> None:
    assert not can(installed, verb, resource, "-A")


def test_trust_material_is_readable_in_the_operators_namespace(installed: ControlPlane) -> None:
    # Secrets by name only (issue 10, item 17): the trust material, never the fleet CA's key.
    for name, allowed in (("modelfleet-trust-material", "yes"), ("modelfleet-fleet-ca", "no")):
        out = installed.kubectl("auth", "can-i", "get", f"secrets/{name}", f"--as={SA}",
                                "-n", "modelfleet-system", check=False)  # fmt: skip
        assert out.stdout.strip() == allowed, name
    assert not can(installed, "get", "secrets", "-n", "modelfleet-system")
    assert can(installed, "get", "configmaps", "-n", "modelfleet-system")

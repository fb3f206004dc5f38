"""An ``oci://`` release from the operator to the gateways, for real: the artifact and its
signature are served by an OCI registry on loopback (manifest, anonymous bearer token, blob),
the real operator verifies it under its allow-list, and 20 gateways running the real agent code
(``modelfleet simulate``) behind the real fleet API pull it through the same fetcher and report
it Active. Before the one fetcher, the operator verified such a release and every gateway then
failed it ("unsupported URI scheme 'oci'")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelfleet.demo.models import ModelShelf
from modelfleet.demo.stack import FleetApiSettings, OperatorSettings, SimulatorSettings, Stack
from modelfleet.demo.watch import Observer
from tests.fetchkit import LoopbackServer

from .loop import MODEL, apply_release, gateway_models, wait_for

pytestmark = pytest.mark.cluster

GATEWAYS = 20


def test_an_oci_release_reaches_every_gateway(
    stack: Stack, shelf: ModelShelf, observer: Observer, tmp_path: Path
) -> None:
    built = shelf.build("1.0.0")
    registry = LoopbackServer().start()
    try:
        uri = registry.oci(
            f"models/{MODEL}", "1.0.0", built.artifact.read_bytes(), realm=registry.url + "/token"
        )
        signature = registry.bytes(f"/signatures/{MODEL}-1.0.0.sig", built.signature.read_bytes())
        stack.fleet_ca_init()
        stack.start_fleet_api(FleetApiSettings())
        stack.start_operator(
            OperatorSettings(extra=("--allow-host", registry.authority, "--allow-scheme", "http"))
        )
        stack.start_simulator(
            SimulatorSettings(gateways=GATEWAYS),
            trust_policy=shelf.write_policy(tmp_path / "trust-policy.yaml"),
        )
        from kubernetes import client

        client.CustomObjectsApi(stack.api).create_cluster_custom_object(
            "modelfleet.dev", "v1alpha1", "trustpolicies", shelf.policy_manifest()
        )
        body: dict[str, Any] = {
            "apiVersion": "modelfleet.dev/v1alpha1",
            "kind": "ModelRelease",
            "metadata": {"name": MODEL},
            "spec": {
                "model": MODEL,
                "version": "1.0.0",
                "artifact": {"uri": uri, "digest": built.digest, "signature": {"uri": signature}},
                "trustPolicy": shelf.policy_name,
                "rollout": {"steps": [{"name": "all", "percent": 100, "bake": "1s"}]},
            },
        }
        apply_release(stack, body)
        wait_for(
            observer, stack,
            lambda v: v.release.phase == "Succeeded" and v.all_on("1.0.0"),
            timeout=180, what="1.0.0 from the registry on every gateway",
        )  # fmt: skip
        models = gateway_models(stack)
        assert len(models) == GATEWAYS
        assert {(m["version"], m["digest"], m["state"]) for m in models.values()} == {
            ("1.0.0", built.digest, "Active")
        }
        # the operator and the gateways each pulled the manifest from the registry
        assert registry.hits[f"/v2/models/{MODEL}/manifests/1.0.0"] >= 2
    finally:
        registry.stop()

"""Helpers of the end-to-end tests: waiting on the fleet, ModelRelease bodies, reading
gateways and events back (the fixtures are in conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from modelfleet.demo.models import ModelShelf
from modelfleet.demo.stack import Stack
from modelfleet.demo.watch import GROUP, VERSION, FleetView, Observer

MODEL = "detector"
SHORT_ROLLOUT: dict[str, Any] = {
    "steps": [
        {"name": "canary", "percent": 20, "bake": "1s"},
        {"name": "fleet", "percent": 100, "bake": "1s"},
    ],
    "gates": {"maxFailedGateways": 0, "maxErrorRate": 0.05, "minReportingRatio": 0.8},
    "rollback": "Immediate",
}
"""A canary of a fifth of the fleet, then everyone, one-second bakes."""


def wait_for(
    observer: Observer,
    stack: Stack,
    predicate: Callable[[FleetView], bool],
    *,
    timeout: float = 120.0,
    what: str,
    each: Callable[[FleetView], None] | None = None,
) -> FleetView:
    """Poll the cluster until ``predicate(view)``; ``each`` sees every view (for invariants)."""
    deadline = time.monotonic() + timeout
    view = observer.snapshot()
    while True:
        stack.check()
        view = observer.snapshot()
        if each is not None:
            each(view)
        if predicate(view):
            return view
        if time.monotonic() > deadline:
            r = view.release
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}: phase={r.phase} "
                f"step={r.step} gates={r.gate_reason} gateways: {view.versions_line()}"
            )
        time.sleep(0.25)


def release_body(
    shelf: ModelShelf,
    version: str,
    steps: list[dict[str, Any]],
    gates: dict[str, Any],
) -> dict[str, Any]:
    """A ModelRelease of :data:`MODEL` at ``version``, built and signed by ``shelf``."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelRelease",
        "metadata": {"name": MODEL},
        "spec": {
            "model": MODEL,
            "version": version,
            "artifact": shelf.build(version).spec_artifact(),
            "trustPolicy": shelf.policy_name,
            "rollout": {"steps": steps, "gates": gates, "rollback": "Immediate"},
        },
    }


def apply_release(stack: Stack, body: dict[str, Any]) -> None:
    """Create the ModelRelease, or merge-patch its spec (what a sync would do)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    custom = client.CustomObjectsApi(stack.api)
    name = body["metadata"]["name"]
    try:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, stack.namespace, "modelreleases", body
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, stack.namespace, "modelreleases", name, {"spec": body["spec"]}
        )


def gateway_models(stack: Stack) -> dict[str, dict[str, Any]]:
    """``{gateway: status.models[detector]}`` straight from the EdgeGateways."""
    from kubernetes import client

    items = client.CustomObjectsApi(stack.api).list_namespaced_custom_object(
        GROUP, VERSION, stack.namespace, "edgegateways"
    )["items"]
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        models = [
            m for m in (item.get("status") or {}).get("models") or [] if m.get("model") == MODEL
        ]
        out[item["metadata"]["name"]] = models[0] if models else {}
    return out

"""Enrollment's one door to the API server: EdgeGateway objects, created, renewed, read, listed.

Every Kubernetes call enrollment makes goes through :class:`GatewayObjects`, on the project's one
async client (:class:`~modelfleet.kube.KubeClient`). Failures become
:class:`~modelfleet.errors.ClusterError` or, for what the user can fix, the caller's own error.
"""

from __future__ import annotations

from typing import Any

from modelfleet.api.constants import GROUP, VERSION
from modelfleet.errors import ClusterError
from modelfleet.kube import ApiError, KubeClient, custom_path

PLURAL = "edgegateways"
JSON_PATCH = "application/json-patch+json"


class Exists(Exception):
    """The EdgeGateway exists and ``renew`` was not asked for."""


class Missing(Exception):
    """No such EdgeGateway."""


class GatewayObjects:
    """EdgeGateways of one namespace, through a :class:`~modelfleet.kube.KubeClient`."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace

    async def put(
        self, name: str, labels: dict[str, str], spec: dict[str, Any], *, renew: bool
    ) -> None:
        """Create EdgeGateway ``name``; if it exists and ``renew``, merge labels and ``spec``
        into it (the new fingerprint replaces the old one), else raise :class:`Exists`."""
        where = f"EdgeGateway {self.namespace}/{name}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EdgeGateway",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": spec,
        }
        try:
            await self.kube.create(custom_path(PLURAL, self.namespace), body)
            return
        except ApiError as exc:
            if exc.status != 409:
                raise ClusterError(f"cannot create {where}: {exc.status} {exc.reason}") from exc
            if not renew:
                raise Exists(where) from exc
        patch = {"metadata": {"labels": labels}, "spec": spec}
        try:
            await self.kube.merge_patch(custom_path(PLURAL, self.namespace, name), patch)
        except ApiError as exc:
            raise ClusterError(f"cannot renew {where}: {exc.status} {exc.reason}") from exc

    async def get(self, name: str) -> dict[str, Any]:
        try:
            return await self.kube.get(custom_path(PLURAL, self.namespace, name))
        except ApiError as exc:
            if exc.not_found:
                raise Missing(name) from exc
            raise ClusterError(
                f"cannot read EdgeGateway {self.namespace}/{name}: {exc.reason}"
            ) from exc

    async def remove_fingerprint(self, name: str) -> None:
        patch = [{"op": "remove", "path": "/spec/certificateFingerprint"}]
        try:
            await self.kube.request(
                "PATCH", custom_path(PLURAL, self.namespace, name), body=patch,
                content_type=JSON_PATCH, kind="patch",
            )  # fmt: skip
        except ApiError as exc:
            raise ClusterError(
                f"cannot revoke EdgeGateway {self.namespace}/{name}: {exc.reason}"
            ) from exc

    async def list(self) -> list[dict[str, Any]]:
        try:
            items, _ = await self.kube.list_all(custom_path(PLURAL, self.namespace))
        except ApiError as exc:
            raise ClusterError(
                f"cannot list EdgeGateways in {self.namespace}: {exc.reason}"
            ) from exc
        return items

"""Enrollment's one door to the API server: EdgeGateway objects, created, renewed, read, listed.

Every Kubernetes call enrollment makes goes through :class:`GatewayObjects`, so the client behind
it (today the synchronous ``kubernetes`` client the CLI already holds; later the project's one
async client) changes here and nowhere else. Failures become
:class:`~modelfleet.errors.ClusterError` or, for what the user can fix, the caller's own error.
"""

from __future__ import annotations

from typing import Any

from modelfleet.api.constants import GROUP, VERSION
from modelfleet.errors import ClusterError

PLURAL = "edgegateways"


class Exists(Exception):
    """The EdgeGateway exists and ``renew`` was not asked for."""


class Missing(Exception):
    """No such EdgeGateway."""


class GatewayObjects:
    """EdgeGateways of one namespace, through a ``kubernetes.client.ApiClient``."""

    def __init__(self, api: Any, namespace: str) -> None:
        from kubernetes import client

        self._objects = client.CustomObjectsApi(api)
        self.namespace = namespace

    def put(self, name: str, labels: dict[str, str], spec: dict[str, Any], *, renew: bool) -> None:
        """Create EdgeGateway ``name``; if it exists and ``renew``, merge labels and ``spec``
        into it (the new fingerprint replaces the old one), else raise :class:`Exists`."""
        from kubernetes.client.exceptions import ApiException

        where = f"EdgeGateway {self.namespace}/{name}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EdgeGateway",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": spec,
        }
        try:
            self._objects.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body
            )
            return
        except ApiException as exc:
            if exc.status != 409:
                raise ClusterError(f"cannot create {where}: {exc.status} {exc.reason}") from exc
            if not renew:
                raise Exists(where) from exc
        patch = {"metadata": {"labels": labels}, "spec": spec}
        try:
            self._objects.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, patch
            )
        except ApiException as exc:
            raise ClusterError(f"cannot renew {where}: {exc.status} {exc.reason}") from exc

    def get(self, name: str) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            obj: Any = self._objects.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                raise Missing(name) from exc
            raise ClusterError(
                f"cannot read EdgeGateway {self.namespace}/{name}: {exc.reason}"
            ) from exc
        return dict(obj)

    def remove_fingerprint(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        patch = [{"op": "remove", "path": "/spec/certificateFingerprint"}]
        try:
            self._objects.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, patch,
                _content_type="application/json-patch+json",
            )  # fmt: skip
        except ApiException as exc:
            raise ClusterError(
                f"cannot revoke EdgeGateway {self.namespace}/{name}: {exc.reason}"
            ) from exc

    def list(self) -> list[dict[str, Any]]:
        from kubernetes.client.exceptions import ApiException

        try:
            doc: Any = self._objects.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL
            )
        except ApiException as exc:
            raise ClusterError(
                f"cannot list EdgeGateways in {self.namespace}: {exc.reason}"
            ) from exc
        items: list[dict[str, Any]] = doc.get("items") or []
        return items

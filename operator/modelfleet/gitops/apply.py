"""Applying objects to the cluster for ``modelfleet sync``: server-side apply, list, delete.

:class:`Applier` is the small interface the sync needs; :class:`KubernetesApplier` implements it
with the ``kubernetes`` package's dynamic client: server-side apply (``fieldManager``
``modelfleet-sync``, ``force=true`` so Git wins over other managers of the same fields, as
Argo CD's ``ServerSideApply=true`` does), discovery to know each kind's scope, and a discovery
refresh after a CustomResourceDefinition is applied in the same sync.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Protocol

from modelfleet.errors import ClusterError, ConfigError

log = logging.getLogger(__name__)

FIELD_MANAGER = "modelfleet-sync"


class Applier(Protocol):
    """What ``modelfleet sync`` needs from a cluster."""

    def is_namespaced(self, api_version: str, kind: str) -> bool | None:
        """The kind's scope, or ``None`` when the cluster does not serve it."""
        ...

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]: ...

    def list(self, api_version: str, kind: str, label_selector: str) -> list[dict[str, Any]]: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None: ...


def api_client(kubeconfig: Path | None = None, context: str | None = None) -> Any:
    """A ``kubernetes.client.ApiClient`` from a kubeconfig (or ``$KUBECONFIG``), else in-cluster."""
    from kubernetes.config.config_exception import ConfigException

    config: Any = importlib.import_module("kubernetes.config")

    try:
        path = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG")
        default = Path("~/.kube/config").expanduser()
        if path or default.exists():
            return config.new_client_from_config(
                config_file=path or str(default), context=context, persist_config=False
            )
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            from kubernetes import client

            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            return client.ApiClient(cfg)
    except (ConfigException, OSError) as exc:
        raise ConfigError(f"cannot load Kubernetes credentials: {exc}") from None
    raise ConfigError(
        "no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a cluster"
    )


class KubernetesApplier:
    """:class:`Applier` over the dynamic client."""

    def __init__(self, client: Any, field_manager: str = FIELD_MANAGER) -> None:
        dynamic: Any = importlib.import_module("kubernetes.dynamic")
        self._dyn: Any = dynamic.DynamicClient(client)
        self._field_manager = field_manager

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self._dyn.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            self._dyn.resources.invalidate_cache()  # a CRD applied moments ago
            try:
                return self._dyn.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                return None

    def is_namespaced(self, api_version: str, kind: str) -> bool | None:
        resource = self._resource(api_version, kind)
        return None if resource is None else bool(resource.namespaced)

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        resource = self._resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        if resource is None:
            raise ClusterError(f"the cluster does not serve {obj['apiVersion']} {obj['kind']}")
        try:
            out = self._dyn.server_side_apply(
                resource,
                body=obj,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=self._field_manager,
                force_conflicts=True,
                dry_run="All" if dry_run else None,
            )
        except ApiException as exc:
            raise ClusterError(_api_message(exc, obj)) from None
        result: dict[str, Any] = out.to_dict()
        if obj["kind"] == "CustomResourceDefinition" and not dry_run:
            self._wait_established(meta["name"])
        return result

    def _wait_established(self, name: str, timeout: float = 30.0) -> None:
        resource = self._resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            crd = self._dyn.get(resource, name=name).to_dict()
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                self._dyn.resources.invalidate_cache()
                return
            time.sleep(0.2)
        raise ClusterError(f"CustomResourceDefinition {name} was not established in {timeout}s")

    def list(self, api_version: str, kind: str, label_selector: str) -> list[dict[str, Any]]:
        resource = self._resource(api_version, kind)
        if resource is None:
            return []
        items = self._dyn.get(resource, label_selector=label_selector).to_dict().get("items")
        return list(items or [])

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        from kubernetes.client.exceptions import ApiException

        resource = self._resource(api_version, kind)
        if resource is None:
            return
        try:
            self._dyn.delete(resource, name=name, namespace=namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise ClusterError(f"cannot delete {kind} {name}: {exc.reason}") from None


def _api_message(exc: Any, obj: dict[str, Any]) -> str:
    import json

    meta = obj["metadata"]
    what = f"{obj['kind']} {meta.get('namespace', '')}/{meta['name']}".replace(" /", " ")
    try:
        detail = json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError):
        detail = exc.reason
    return f"cannot apply {what}: {detail}"

"""Applying objects to the cluster for ``modelfleet sync``: get, create, server-side apply,
list, delete.

:class:`Applier` is the small interface the sync needs; :class:`KubernetesApplier` implements it
with the ``kubernetes`` package's dynamic client. A new object is *created* (POST: it fails if
the object appeared meanwhile, so the sync knows it made the object and records the uid the API
server gave it); the create's field ownership is then turned into this manager's ``Apply``
ownership, so a field later removed from Git is removed from the object. Every write after that
is a server-side apply (``fieldManager`` ``modelfleet-sync``, ``force=true`` so Git wins over
other managers of the same fields, as Argo CD's ``ServerSideApply=true`` does) with
``metadata.uid`` in the body, so it fails on an object recreated since it was read. Deletes carry
the uid as a precondition. Discovery gives each kind's scope.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any, Protocol

from modelfleet.errors import ClusterError, ConfigError

log = logging.getLogger(__name__)

FIELD_MANAGER = "modelfleet-sync"


class ObjectExists(ClusterError):
    """A create found the object already there."""


class Applier(Protocol):
    """What ``modelfleet sync`` needs from a cluster."""

    def is_namespaced(self, api_version: str, kind: str) -> bool | None:
        """The kind's scope, or ``None`` when the cluster does not serve it."""
        ...

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> dict[str, Any] | None:
        """The live object, or ``None`` when there is none."""
        ...

    def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Create ``obj``; :class:`ObjectExists` when it already exists."""
        ...

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]: ...

    def list(
        self, api_version: str, kind: str, label_selector: str, namespace: str | None = None
    ) -> list[dict[str, Any]]: ...

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        uid: str | None = None,
    ) -> None:
        """Delete; with ``uid``, only that very object (a precondition)."""
        ...


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
            self._dyn.resources.invalidate_cache()  # a CRD installed since discovery
            try:
                return self._dyn.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                return None

    def is_namespaced(self, api_version: str, kind: str) -> bool | None:
        resource = self._resource(api_version, kind)
        return None if resource is None else bool(resource.namespaced)

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        resource = self._resource(api_version, kind)
        if resource is None:
            return None
        try:
            found: dict[str, Any] = self._dyn.get(
                resource, name=name, namespace=namespace
            ).to_dict()
        except ApiException as exc:
            if exc.status == 404:
                return None
            where = f"{namespace}/{name}" if namespace else name
            raise ClusterError(f"cannot read {kind} {where}: {exc.status} {exc.reason}") from None
        return found

    def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        resource = self._resource(obj["apiVersion"], obj["kind"])
        if resource is None:
            raise ClusterError(f"the cluster does not serve {obj['apiVersion']} {obj['kind']}")
        try:
            out = self._dyn.create(
                resource,
                body=obj,
                namespace=obj["metadata"].get("namespace"),
                field_manager=self._field_manager,
                dry_run="All" if dry_run else None,
            )
        except ApiException as exc:
            if exc.status == 409:
                raise ObjectExists(_api_message(exc, obj)) from None
            raise ClusterError(_api_message(exc, obj)) from None
        created: dict[str, Any] = out.to_dict()
        return created if dry_run else self._as_applied(resource, created)

    def _as_applied(self, resource: Any, created: dict[str, Any]) -> dict[str, Any]:
        """Turn the create's ``Update`` managedFields entry into this manager's ``Apply`` entry
        (as ``kubectl``'s client-side to server-side apply migration does), so that a field
        later removed from Git is removed from the object by the next server-side apply."""
        from kubernetes.client.exceptions import ApiException

        meta = created["metadata"]
        entries = meta.get("managedFields") or []
        index = next(
            (
                i
                for i, m in enumerate(entries)
                if m.get("manager") == self._field_manager and m.get("operation") == "Update"
            ),
            None,
        )
        if index is None:
            return created
        patch = [
            {"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
            {"op": "test", "path": f"/metadata/managedFields/{index}/manager",
             "value": self._field_manager},
            {"op": "replace", "path": f"/metadata/managedFields/{index}/operation",
             "value": "Apply"},
        ]  # fmt: skip
        try:
            out = self._dyn.patch(
                resource,
                body=patch,
                name=meta["name"],
                namespace=meta.get("namespace"),
                content_type="application/json-patch+json",
                field_manager=self._field_manager,
            )
        except ApiException as exc:
            raise ClusterError(_api_message(exc, created, "take field ownership of")) from None
        patched: dict[str, Any] = out.to_dict()
        return patched

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
        return result

    def list(
        self, api_version: str, kind: str, label_selector: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        from kubernetes.client.exceptions import ApiException

        resource = self._resource(api_version, kind)
        if resource is None:
            return []
        try:
            found = self._dyn.get(resource, namespace=namespace, label_selector=label_selector)
        except ApiException as exc:
            where = f" in {namespace}" if namespace else ""
            raise ClusterError(f"cannot list {kind}{where}: {exc.status} {exc.reason}") from None
        return list(found.to_dict().get("items") or [])

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        uid: str | None = None,
    ) -> None:
        from kubernetes.client.exceptions import ApiException

        resource = self._resource(api_version, kind)
        if resource is None:
            return
        body = {"preconditions": {"uid": uid}} if uid else None
        try:
            self._dyn.delete(resource, name=name, namespace=namespace, body=body)
        except ApiException as exc:
            if exc.status == 409 and uid:  # recreated since it was listed: not ours
                log.warning("not deleting %s %s: it was recreated (uid changed)", kind, name)
                return
            if exc.status != 404:
                raise ClusterError(f"cannot delete {kind} {name}: {exc.reason}") from None


def _api_message(exc: Any, obj: dict[str, Any], verb: str = "apply") -> str:
    import json

    meta = obj["metadata"]
    what = f"{obj['kind']} {meta.get('namespace', '')}/{meta['name']}".replace(" /", " ")
    try:
        detail = json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError):
        detail = exc.reason
    return f"cannot {verb} {what}: {detail}"

"""Applying objects to the cluster for ``modelfleet sync``: get, create, server-side apply,
list, delete.

:class:`Applier` is the small interface the sync needs; :class:`KubeApplier` implements it with
the one client, :class:`~modelfleet.kube.KubeClient`. A new object is *created* (POST: it fails if
the object appeared meanwhile, so the sync knows it made the object and records the uid the API
server gave it); the create's field ownership is then turned into this manager's ``Apply``
ownership, so a field later removed from Git is removed from the object. Every write after that
is a server-side apply (``fieldManager`` ``modelfleet-sync``, ``force=true`` so Git wins over
other managers of the same fields, as Argo CD's ``ServerSideApply=true`` does) with
``metadata.uid`` in the body, so it fails on an object recreated since it was read. Deletes carry
the uid as a precondition. Discovery gives each kind's scope.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from modelfleet.errors import ClusterError
from modelfleet.gitops.ownership import ObjectRef
from modelfleet.kube import ApiError, KubeClient

log = logging.getLogger(__name__)

FIELD_MANAGER = "modelfleet-sync"


class ObjectExists(ClusterError):
    """A create found the object already there."""


class Applier(Protocol):
    """What ``modelfleet sync`` needs from a cluster."""

    async def is_namespaced(self, api_version: str, kind: str) -> bool | None:
        """The kind's scope, or ``None`` when the cluster does not serve it."""
        ...

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The live object, or ``None`` when there is none."""
        ...

    async def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Create ``obj``; :class:`ObjectExists` when it already exists."""
        ...

    async def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]: ...

    async def list(
        self, api_version: str, kind: str, label_selector: str, namespace: str | None = None
    ) -> list[dict[str, Any]]: ...

    async def delete(self, ref: ObjectRef, uid: str | None = None) -> None:
        """Delete; with ``uid``, only that very object (a precondition)."""
        ...


class KubeApplier:
    """:class:`Applier` over :class:`~modelfleet.kube.KubeClient` (discovery gives each kind's
    plural and scope)."""

    def __init__(self, kube: KubeClient, field_manager: str = FIELD_MANAGER) -> None:
        self.kube = kube
        self._field_manager = field_manager

    async def _path(
        self, api_version: str, kind: str, namespace: str | None, name: str | None = None
    ) -> str | None:
        found = await self.kube.resource(api_version, kind)
        if found is None:
            return None
        plural, namespaced = found
        base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        if namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{plural}"
        return f"{base}/{name}" if name else base

    async def _object_path(self, obj: dict[str, Any]) -> str:
        meta = obj["metadata"]
        path = await self._path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        if path is None:
            raise ClusterError(f"the cluster does not serve {obj['apiVersion']} {obj['kind']}")
        return path

    async def is_namespaced(self, api_version: str, kind: str) -> bool | None:
        found = await self.kube.resource(api_version, kind)
        return None if found is None else found[1]

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        kind, name, namespace = ref.kind, ref.name, ref.namespace or None
        path = await self._path(ref.api_version, kind, namespace, name)
        if path is None:
            return None
        try:
            return await self.kube.get(path)
        except ApiError as exc:
            if exc.not_found:
                return None
            where = f"{namespace}/{name}" if namespace else name
            raise ClusterError(f"cannot read {kind} {where}: {exc.status} {exc.reason}") from None

    async def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        path = await self._object_path(obj)
        params = {"fieldManager": self._field_manager, **({"dryRun": "All"} if dry_run else {})}
        try:
            created = await self.kube.request(
                "POST", path.rsplit("/", 1)[0], body=obj, params=params, kind="create"
            )
        except ApiError as exc:
            if exc.conflict:
                raise ObjectExists(_api_message(exc, obj)) from None
            raise ClusterError(_api_message(exc, obj)) from None
        return created if dry_run else await self._as_applied(path, created)

    async def _as_applied(self, path: str, created: dict[str, Any]) -> dict[str, Any]:
        """Turn the create's ``Update`` managedFields entry into this manager's ``Apply`` entry
        (as ``kubectl``'s client-side to server-side apply migration does), so that a field
        later removed from Git is removed from the object by the next server-side apply."""
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
            return await self.kube.request(
                "PATCH",
                path,
                body=patch,
                params={"fieldManager": self._field_manager},
                content_type="application/json-patch+json",
                kind="patch",
            )
        except ApiError as exc:
            raise ClusterError(_api_message(exc, created, "take field ownership of")) from None

    async def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        path = await self._object_path(obj)
        try:
            return await self.kube.apply(
                path, obj, field_manager=self._field_manager, force=True, dry_run=dry_run
            )
        except ApiError as exc:
            raise ClusterError(_api_message(exc, obj)) from None

    async def list(
        self, api_version: str, kind: str, label_selector: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        path = await self._path(api_version, kind, namespace)
        if path is None:
            return []
        try:
            items, _ = await self.kube.list_all(path, label_selector=label_selector)
        except ApiError as exc:
            where = f" in {namespace}" if namespace else ""
            raise ClusterError(f"cannot list {kind}{where}: {exc.status} {exc.reason}") from None
        return items

    async def delete(self, ref: ObjectRef, uid: str | None = None) -> None:
        kind, name = ref.kind, ref.name
        path = await self._path(ref.api_version, kind, ref.namespace or None, name)
        if path is None:
            return
        try:
            await self.kube.delete(path, uid=uid)
        except ApiError as exc:
            if exc.conflict and uid:  # recreated since it was listed: not ours
                log.warning("not deleting %s %s: it was recreated (uid changed)", kind, name)
                return
            if not exc.not_found:
                raise ClusterError(f"cannot delete {kind} {name}: {exc.reason}") from None


def _api_message(exc: ApiError, obj: dict[str, Any], verb: str = "apply") -> str:
    meta = obj["metadata"]
    what = f"{obj['kind']} {meta.get('namespace', '')}/{meta['name']}".replace(" /", " ")
    return f"cannot {verb} {what}: {exc.reason}"

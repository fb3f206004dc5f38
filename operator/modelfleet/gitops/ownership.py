"""What ``modelfleet sync`` writes on an object and how it tells its own objects: the sync label,
the Git annotations, the ownership annotation bound to the API server's uid, the sync-wave order,
and the prune opt-out (see :mod:`modelfleet.gitops.sync` for the rules)."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelfleet.api.source import PATH_ANNOTATION, REPO_ANNOTATION, REVISION_ANNOTATION
from modelfleet.gitops.errors import SyncFailed
from modelfleet.gitops.source import Manifest

if TYPE_CHECKING:
    from modelfleet.gitops.sync import SyncConfig

SYNC_LABEL = "modelfleet.dev/sync"
OWNER_ANNOTATION = "modelfleet.dev/sync-owner"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
KIND_ORDER: dict[str, int] = {"TrustPolicy": 6, "EdgeGateway": 7, "ModelRelease": 8}
OTHER_KINDS = 5


@dataclass(frozen=True, order=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ObjectRef:
        meta = obj.get("metadata") or {}
        return cls(obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"])


def wave(obj: dict[str, Any]) -> int:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(SYNC_WAVE, "0")
    try:
        return int(str(raw).strip())
    except ValueError:
        raise SyncFailed(f"{ObjectRef.of(obj)}: {SYNC_WAVE} {raw!r} is not an integer") from None


def owner_value(config: SyncConfig, uid: str) -> str:
    """The ownership annotation of an object this sync created (or adopted) with ``uid``."""
    return f"{config.name}/{uid}"


def owned(live: dict[str, Any], config: SyncConfig) -> bool:
    """Whether this sync created (or adopted) ``live``: its ownership annotation names this sync
    and the object's own uid, which the API server chose and nobody can set."""
    meta = live.get("metadata") or {}
    uid = meta.get("uid")
    recorded = (meta.get("annotations") or {}).get(OWNER_ANNOTATION)
    return bool(uid) and recorded == owner_value(config, str(uid))


def stamp(
    manifest: Manifest,
    *,
    config: SyncConfig,
    revision: str,
    namespaced: bool | None,
    uid: str | None = None,
) -> dict[str, Any]:
    """The object to apply: the manifest plus the sync's label and Git annotations, and (with
    ``uid``) the ownership annotation and ``metadata.uid`` (a precondition of the apply)."""
    obj = copy.deepcopy(manifest.doc)
    meta = obj.setdefault("metadata", {})
    if namespaced and not meta.get("namespace"):
        meta["namespace"] = config.namespace
    for key in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    meta.setdefault("labels", {})[SYNC_LABEL] = config.name
    annotations = meta.setdefault("annotations", {})
    annotations.pop(OWNER_ANNOTATION, None)  # only the sync decides who owns an object
    annotations.update(
        {
            REPO_ANNOTATION: config.source.url,
            PATH_ANNOTATION: manifest.path,
            REVISION_ANNOTATION: revision,
        }
    )
    if uid is not None:
        meta["uid"] = uid
        annotations[OWNER_ANNOTATION] = owner_value(config, uid)
    obj.pop("status", None)
    return obj


def order(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sync order: wave, then kind, then namespace and name."""

    def key(obj: dict[str, Any]) -> tuple[int, int, str, str]:
        ref = ObjectRef.of(obj)
        return (wave(obj), KIND_ORDER.get(ref.kind, OTHER_KINDS), ref.namespace, ref.name)

    return sorted(objects, key=key)


def prune_opted_out(obj: dict[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    options = str(annotations.get(SYNC_OPTIONS, "")).replace(" ", "")
    return "Prune=false" in options.split(",")

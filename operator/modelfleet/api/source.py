"""Which Git commit a ModelRelease's spec came from, for ``status.source`` and ``status.history``.

Pure functions over plain dicts: no kubernetes import and nothing that needs git, so the operator
(which has neither GitPython nor a ``git`` binary in its image) uses it as is, and so does
:mod:`modelfleet.gitops` (which re-exports it). The operator reads
the object, fetches the Argo CD Application named by :func:`tracking_application` if any, and
calls :func:`source_revision`. Two sources are understood, in this order:

1. Argo CD. Resource tracking by annotation (``argocd.argoproj.io/tracking-id`` =
   ``<app>:<group>/<kind>:<namespace>/<name>``, the default since Argo CD 3) or by label
   (``app.kubernetes.io/instance`` = ``<app>``, the older default). ``<app>`` is
   ``<app-namespace>_<app-name>`` for Applications outside Argo CD's own namespace. The revision
   is the Application's ``status.sync.revision`` when the object (or the Application) is
   Synced, else the last successful ``status.operationState.syncResult.revision``, else the last
   ``status.history`` entry; the repository and path are
   ``spec.source.repoURL`` / ``spec.source.path`` (for multi-source Applications: the source
   with a ``path``, and the matching entry of ``revisions``). A tracking id that names another
   object (copied labels or annotations) is ignored.
2. ``modelfleet sync``: the annotations ``modelfleet.dev/git-revision``,
   ``modelfleet.dev/git-repo`` and ``modelfleet.dev/git-path`` it stamps on what it applies
   (there ``path`` is the file the object came from).

An Argo CD object whose Application was not passed in (or has not synced yet) falls back to the
sync annotations, and otherwise has no known source (``None``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet.api.constants import (
    SOURCE_PATH_ANNOTATION,
    SOURCE_REPO_ANNOTATION,
    SOURCE_REVISION_ANNOTATION,
)

TRACKING_ID_ANNOTATION = "argocd.argoproj.io/tracking-id"
INSTANCE_LABEL = "app.kubernetes.io/instance"
REVISION_ANNOTATION = SOURCE_REVISION_ANNOTATION
REPO_ANNOTATION = SOURCE_REPO_ANNOTATION
PATH_ANNOTATION = SOURCE_PATH_ANNOTATION


@dataclass(frozen=True)
class SourceRevision:
    """``status.source`` of a ModelRelease."""

    repo_url: str
    revision: str
    path: str

    def to_status(self) -> dict[str, str]:
        """The camelCase dict for ``status.source``."""
        return {"repoURL": self.repo_url, "revision": self.revision, "path": self.path}


@dataclass(frozen=True)
class TrackingId:
    """A parsed Argo CD tracking id."""

    app_name: str
    app_namespace: str | None  # None: Argo CD's own namespace (the caller's default)
    group: str
    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class ApplicationRef:
    """The Argo CD Application an object is tracked by."""

    name: str
    namespace: str | None  # None: Argo CD's control-plane namespace (usually "argocd")


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _split_app(app: str) -> tuple[str, str | None]:
    ns, sep, name = app.partition("_")  # "_" cannot occur in a Kubernetes name
    return (name, ns) if sep else (app, None)


def parse_tracking_id(value: str) -> TrackingId | None:
    """``<app>:<group>/<kind>:<namespace>/<name>`` → :class:`TrackingId`; ``None`` if malformed.

    The namespace is empty for cluster-scoped objects; the group is empty for the core group.
    """
    parts = value.split(":")
    if len(parts) != 3 or not parts[0]:
        return None
    gk, nn = parts[1], parts[2]
    if "/" not in gk or "/" not in nn:
        return None
    group, _, kind = gk.partition("/")
    namespace, _, name = nn.partition("/")
    if not kind or not name:
        return None
    app_name, app_namespace = _split_app(parts[0])
    return TrackingId(app_name, app_namespace, group, kind, namespace, name)


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def tracking_application(obj: Mapping[str, Any]) -> ApplicationRef | None:
    """The Argo CD Application tracking ``obj``, or ``None`` if it is not tracked (or the
    tracking id was copied from another object)."""
    meta = _map(obj.get("metadata"))
    raw = _map(meta.get("annotations")).get(TRACKING_ID_ANNOTATION)
    if isinstance(raw, str) and raw:
        tid = parse_tracking_id(raw)
        if tid is None:
            return None
        same = (
            tid.kind == obj.get("kind")
            and tid.group == _group(str(obj.get("apiVersion", "")))
            and tid.name == meta.get("name")
            and tid.namespace == (meta.get("namespace") or "")
        )
        return ApplicationRef(tid.app_name, tid.app_namespace) if same else None
    instance = _map(meta.get("labels")).get(INSTANCE_LABEL)
    if isinstance(instance, str) and instance:
        name, ns = _split_app(instance)
        return ApplicationRef(name, ns)
    return None


def _resource_synced(status: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    """Whether the Application reports this very object as Synced."""
    meta = _map(obj.get("metadata"))
    for res in status.get("resources") or ():
        r = _map(res)
        if (
            r.get("kind") == obj.get("kind")
            and (r.get("group") or "") == _group(str(obj.get("apiVersion", "")))
            and r.get("name") == meta.get("name")
            and (r.get("namespace") or "") == (meta.get("namespace") or "")
        ):
            return r.get("status") == "Synced"
    return False


def _pick(value: Any, index: int | None) -> str | None:
    if index is None:
        return value if isinstance(value, str) and value else None
    if isinstance(value, list) and len(value) > index and isinstance(value[index], str):
        return value[index] or None
    return None


def _application_source(
    app: Mapping[str, Any], obj: Mapping[str, Any]
) -> tuple[str, str, str] | None:
    """Repo, revision and path of the live ``obj`` according to its Application.

    ``status.sync.revision`` is what Git says *now*; it describes the live object only when the
    object (or the whole Application) is Synced. Otherwise the object still is what the last
    successful sync operation applied (``operationState.syncResult``), else the last entry of
    ``status.history``.
    """
    spec, status = _map(app.get("spec")), _map(app.get("status"))
    sync = _map(status.get("sync"))
    operation = _map(status.get("operationState"))
    result = _map(operation.get("syncResult"))
    source = _map(spec.get("source"))
    index: int | None = None
    if not source:
        sources = spec.get("sources")
        if not isinstance(sources, list) or not sources:
            return None
        index = next((i for i, s in enumerate(sources) if _map(s).get("path") is not None), 0)
        source = _map(sources[index])
    key = "revision" if index is None else "revisions"
    candidates: list[str | None] = []
    if _resource_synced(status, obj) or sync.get("status") == "Synced":
        candidates.append(_pick(sync.get(key), index))
    if operation.get("phase") == "Succeeded":
        candidates.append(_pick(result.get(key), index))
    history = status.get("history")
    if isinstance(history, list) and history:
        candidates.append(_pick(_map(history[-1]).get(key), index))
    revision = next((c for c in candidates if c), None)
    repo = source.get("repoURL")
    if not (revision and isinstance(repo, str) and repo):
        return None
    return repo, revision, str(source.get("path") or "")


def source_revision(
    obj: Mapping[str, Any], application: Mapping[str, Any] | None = None
) -> SourceRevision | None:
    """``{repoURL, revision, path}`` of the commit ``obj``'s spec came from, if known.

    ``application`` is the Argo CD Application named by :func:`tracking_application` (as fetched
    by the caller); it is used only when it really is that Application.
    """
    tracked = tracking_application(obj)
    if tracked is not None and application is not None:
        app_meta = _map(application.get("metadata"))
        if application.get("kind", "Application") == "Application" and (
            app_meta.get("name") == tracked.name
            and (tracked.namespace is None or app_meta.get("namespace") == tracked.namespace)
        ):
            found = _application_source(application, obj)
            if found is not None:
                return SourceRevision(*found)
    annotations = _map(_map(obj.get("metadata")).get("annotations"))
    revision, repo = annotations.get(REVISION_ANNOTATION), annotations.get(REPO_ANNOTATION)
    if isinstance(revision, str) and revision and isinstance(repo, str) and repo:
        path = annotations.get(PATH_ANNOTATION)
        return SourceRevision(repo, revision, path if isinstance(path, str) else "")
    return None

"""``modelfleet sync``: a built-in Git → cluster sync for fleets without Argo CD.

One pass (:func:`sync_once`): fetch the ref (:mod:`modelfleet.gitops.source`), optionally require
a trusted commit signature, read every manifest under the path, stamp each object, order them,
server-side apply them (:mod:`modelfleet.gitops.apply`), then optionally prune.

Stamps, read back by :func:`modelfleet.gitops.revision.source_revision`:

* label ``modelfleet.dev/sync: <name>``: the sync owns the object (only such objects are pruned);
* ``modelfleet.dev/git-repo`` (the URL), ``modelfleet.dev/git-path`` (the file the object came
  from) and ``modelfleet.dev/git-revision``: the last commit that changed that file, not the
  commit synced, so an unrelated commit changes no object (no update event, no new revision in a
  ModelRelease's history) and the revision names the release commit ``modelfleet rollback``
  reverts.

Order: Argo CD's ``argocd.argoproj.io/sync-wave`` annotation first (so the same repository syncs
the same way under both), then kind (Namespace, CRD, ..., TrustPolicy, EdgeGateway, ModelRelease
last), then namespace and name.

Prune (opt-in): objects of the synced kinds (plus the three modelfleet kinds) that carry this
sync's label and repository annotation but are no longer in Git are deleted, except those
annotated ``argocd.argoproj.io/sync-options: Prune=false``. An empty path never prunes unless
``allow_empty`` (a mistyped path must not wipe a fleet).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelfleet.errors import ModelfleetError
from modelfleet.gitops.apply import Applier
from modelfleet.gitops.errors import SyncFailed
from modelfleet.gitops.history import CommitSignature
from modelfleet.gitops.revision import PATH_ANNOTATION, REPO_ANNOTATION, REVISION_ANNOTATION
from modelfleet.gitops.source import (
    GitSource,
    Manifest,
    SignaturePolicy,
    fetch,
    last_change,
    read_manifests,
    require_trusted,
)

log = logging.getLogger(__name__)

SYNC_LABEL = "modelfleet.dev/sync"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
GROUP_VERSION = "modelfleet.dev/v1alpha1"
ALWAYS_PRUNABLE = ("TrustPolicy", "EdgeGateway", "ModelRelease")
KIND_ORDER: dict[str, int] = {
    "Namespace": 0,
    "CustomResourceDefinition": 1,
    "ServiceAccount": 2,
    "Secret": 3,
    "ConfigMap": 4,
    "TrustPolicy": 6,
    "EdgeGateway": 7,
    "ModelRelease": 8,
}
_OTHER_KINDS = 5


@dataclass(frozen=True)
class SyncConfig:
    source: GitSource
    cache_dir: Path
    name: str = "default"
    namespace: str = "default"  # for namespaced objects that name none
    prune: bool = False
    allow_empty: bool = False
    signatures: SignaturePolicy | None = None  # None: signatures not required
    dry_run: bool = False


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


@dataclass(frozen=True)
class SyncResult:
    revision: str
    applied: tuple[ObjectRef, ...]
    pruned: tuple[ObjectRef, ...]
    signature: CommitSignature | None = None
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "applied": [str(r) for r in self.applied],
            "pruned": [str(r) for r in self.pruned],
            "signer": self.signature.signer if self.signature else None,
            "dryRun": self.dry_run,
        }


def _wave(obj: dict[str, Any]) -> int:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(SYNC_WAVE, "0")
    try:
        return int(str(raw).strip())
    except ValueError:
        raise SyncFailed(f"{ObjectRef.of(obj)}: {SYNC_WAVE} {raw!r} is not an integer") from None


def stamp(
    manifest: Manifest, *, config: SyncConfig, revision: str, namespaced: bool | None
) -> dict[str, Any]:
    """The object to apply: the manifest plus the sync's label and Git annotations."""
    obj = copy.deepcopy(manifest.doc)
    meta = obj.setdefault("metadata", {})
    if namespaced and not meta.get("namespace"):
        meta["namespace"] = config.namespace
    meta.setdefault("labels", {})[SYNC_LABEL] = config.name
    meta.setdefault("annotations", {}).update(
        {
            REPO_ANNOTATION: config.source.url,
            PATH_ANNOTATION: manifest.path,
            REVISION_ANNOTATION: revision,
        }
    )
    obj.pop("status", None)
    return obj


def order(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sync order: wave, then kind, then namespace and name."""

    def key(obj: dict[str, Any]) -> tuple[int, int, str, str]:
        ref = ObjectRef.of(obj)
        return (_wave(obj), KIND_ORDER.get(ref.kind, _OTHER_KINDS), ref.namespace, ref.name)

    return sorted(objects, key=key)


def _prunable(obj: dict[str, Any], url: str) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if annotations.get(REPO_ANNOTATION) != url:
        return False
    options = str(annotations.get(SYNC_OPTIONS, "")).replace(" ", "")
    return "Prune=false" not in options.split(",")


def sync_once(config: SyncConfig, applier: Applier) -> SyncResult:
    """One sync pass; raises :class:`SyncFailed` (or a cluster error) and applies nothing when
    the commit is untrusted or a manifest is unreadable."""
    repo, sha = fetch(config.source, config.cache_dir)
    signature = require_trusted(repo, sha, config.signatures) if config.signatures else None
    manifests = read_manifests(repo, sha, config.source.path)
    if not manifests and not config.allow_empty:
        raise SyncFailed(
            f"no manifests under {config.source.path!r} at {sha[:12]}; refusing to sync an "
            "empty path (pass --allow-empty if that is intended)"
        )
    changed: dict[str, str] = {}
    objects = []
    for m in manifests:
        if m.path not in changed:
            changed[m.path] = last_change(repo, sha, m.path)
        namespaced = applier.is_namespaced(m.doc["apiVersion"], m.doc["kind"])
        objects.append(stamp(m, config=config, revision=changed[m.path], namespaced=namespaced))
    ordered = order(objects)
    seen: set[ObjectRef] = set()
    for obj in ordered:
        ref = ObjectRef.of(obj)
        if ref in seen:
            raise SyncFailed(f"{ref} is defined twice under {config.source.path!r}")
        seen.add(ref)
    applied = []
    for obj in ordered:
        applier.apply(obj, dry_run=config.dry_run)
        applied.append(ObjectRef.of(obj))
        log.info("sync %s: applied %s at %s", config.name, applied[-1], sha[:12])
    pruned = _prune(config, applier, seen) if config.prune else []
    return SyncResult(sha, tuple(applied), tuple(pruned), signature, config.dry_run)


def _prune(config: SyncConfig, applier: Applier, keep: set[ObjectRef]) -> list[ObjectRef]:
    kinds = {(r.api_version, r.kind) for r in keep}
    kinds |= {(GROUP_VERSION, k) for k in ALWAYS_PRUNABLE}
    pruned = []
    selector = f"{SYNC_LABEL}={config.name}"
    for api_version, kind in sorted(kinds, key=lambda k: -KIND_ORDER.get(k[1], _OTHER_KINDS)):
        for item in applier.list(api_version, kind, selector):
            live = {**item, "apiVersion": api_version, "kind": kind}
            ref = ObjectRef.of(live)
            if ref in keep or not _prunable(live, config.source.url):
                continue
            if not config.dry_run:
                applier.delete(api_version, kind, ref.name, ref.namespace or None)
            pruned.append(ref)
            log.info("sync %s: pruned %s (no longer in Git)", config.name, ref)
    return pruned


@dataclass
class LoopState:
    """What the loop has done so far (for status output and tests)."""

    passes: int = 0
    failures: int = 0
    last: SyncResult | None = None
    errors: list[str] = field(default_factory=list)


def run_sync_loop(
    config: SyncConfig,
    applier: Applier,
    *,
    interval: float,
    stop: threading.Event,
    on_result: Callable[[SyncResult | ModelfleetError], None] | None = None,
) -> LoopState:
    """Sync every ``interval`` seconds until ``stop`` is set. A failed pass (fetch, untrusted
    commit, bad manifest, API error) is logged and retried at the next interval; what was
    applied before stays as it is."""
    state = LoopState()
    while not stop.is_set():
        state.passes += 1
        try:
            result = sync_once(config, applier)
        except ModelfleetError as exc:
            state.failures += 1
            state.errors.append(exc.diagnostics())
            log.error("sync %s failed: %s", config.name, exc.diagnostics())
            if on_result:
                on_result(exc)
        else:
            state.last = result
            if on_result:
                on_result(result)
        stop.wait(interval)
    return state

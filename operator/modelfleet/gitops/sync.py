"""``modelfleet sync``: a built-in Git → cluster sync for fleets without Argo CD.

One pass (:func:`sync_once`): fetch the ref (:mod:`modelfleet.gitops.source`), optionally require
that every commit not yet trusted is signed, read every manifest under the path, **check the
whole commit** (allow-listed kinds and namespaces, duplicates, ownership of what already exists)
and only then stamp, order and server-side apply the objects
(:mod:`modelfleet.gitops.apply`), then optionally prune. A commit that fails any check applies
nothing.

What a commit may contain (a Git writer must not get the sync's credentials):

* kinds: ``ModelRelease`` and ``EdgeGateway`` of ``modelfleet.dev``; ``TrustPolicy`` only with
  ``allow_trust_policies`` (``--allow-trust-policies``): it decides who may sign models for the
  whole cluster. Anything else (RBAC, Secrets, Namespaces, CRDs, workloads) is refused.
* namespaces: ``namespace`` (``--namespace``, also the namespace of objects that name none)
  and ``namespaces`` (``--allow-namespace``); nothing else.

Ownership: an object the sync creates gets the annotation ``modelfleet.dev/sync-owner:
<sync name>/<uid>``, with the uid the API server gave it at creation. Only an object whose
annotation names this sync and whose recorded uid equals its actual ``metadata.uid`` (which no
one can choose) is the sync's: it is updated, and pruned when gone from Git. Copying the label
or the annotations to another object, or recreating an object under the same name, does not
make it the sync's. An object that exists but is not the sync's is refused (the whole commit),
unless ``adopt`` (``--adopt``) takes it over (its current uid is recorded).

Stamps, read back by :func:`modelfleet.api.source.source_revision`:

* label ``modelfleet.dev/sync: <name>``: lets prune list candidates (not proof of ownership);
* ``modelfleet.dev/git-repo`` (the URL), ``modelfleet.dev/git-path`` (the file the object came
  from) and ``modelfleet.dev/git-revision``: the last commit that changed that file, not the
  commit synced, so an unrelated commit changes no object (no update event, no new revision in a
  ModelRelease's history) and the revision names the release commit ``modelfleet rollback``
  reverts.

Order: Argo CD's ``argocd.argoproj.io/sync-wave`` annotation first (so the same repository syncs
the same way under both), then kind (TrustPolicy, EdgeGateway, ModelRelease last), then
namespace and name.

Prune (opt-in): objects of the allowed kinds in the allowed namespaces that this sync owns (see
above) but are no longer in Git are deleted (with the uid as a precondition), except those
annotated ``argocd.argoproj.io/sync-options: Prune=false``. An empty path never prunes unless
``allow_empty`` (a mistyped path must not wipe a fleet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelfleet.errors import ModelfleetError
from modelfleet.gitops.apply import Applier, ObjectExists
from modelfleet.gitops.errors import SyncFailed, SyncRefused
from modelfleet.gitops.history import CommitSignature
from modelfleet.gitops.ownership import (
    KIND_ORDER,
    OTHER_KINDS,
    SYNC_LABEL,
    ObjectRef,
    order,
    owned,
    prune_opted_out,
    stamp,
)
from modelfleet.gitops.source import (
    GitSource,
    Manifest,
    SignaturePolicy,
    applied_revision,
    fetch,
    last_change,
    mark_applied,
    read_manifests,
    require_trusted_range,
)

log = logging.getLogger(__name__)

GROUP = "modelfleet.dev"
GROUP_VERSION = f"{GROUP}/v1alpha1"
DEFAULT_KINDS = ("EdgeGateway", "ModelRelease")
TRUST_KINDS = ("TrustPolicy",)
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


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
    namespaces: tuple[str, ...] = ()  # where objects may go, besides ``namespace``
    allow_trust_policies: bool = False
    adopt: bool = False
    trust_from: str | None = None  # with signatures: a commit trusted without checking

    @property
    def allowed_kinds(self) -> tuple[str, ...]:
        return (*TRUST_KINDS, *DEFAULT_KINDS) if self.allow_trust_policies else DEFAULT_KINDS

    @property
    def allowed_namespaces(self) -> tuple[str, ...]:
        return tuple(sorted({self.namespace, *self.namespaces}))


@dataclass(frozen=True)
class SyncResult:
    revision: str
    applied: tuple[ObjectRef, ...]
    pruned: tuple[ObjectRef, ...]
    signature: CommitSignature | None = None
    dry_run: bool = False
    adopted: tuple[ObjectRef, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "applied": [str(r) for r in self.applied],
            "adopted": [str(r) for r in self.adopted],
            "pruned": [str(r) for r in self.pruned],
            "signer": self.signature.signer if self.signature else None,
            "dryRun": self.dry_run,
        }


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def _describe(m: Manifest) -> str:
    meta = m.doc.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{m.path}: {m.doc.get('kind')} {f'{ns}/' if ns else ''}{meta.get('name')}"


def _kind_problem(m: Manifest, config: SyncConfig) -> str | None:
    kind, api_version = str(m.doc.get("kind")), str(m.doc.get("apiVersion"))
    if _group(api_version) == GROUP and kind in config.allowed_kinds:
        return None
    allowed = ", ".join(config.allowed_kinds)
    hint = "" if config.allow_trust_policies else " (TrustPolicy with --allow-trust-policies)"
    return f"kind {kind} ({api_version}) is not allowed: sync applies only {allowed}{hint}"


async def _check(
    manifests: list[Manifest], config: SyncConfig, applier: Applier, sha: str
) -> list[tuple[Manifest, bool]]:
    """Refuse the commit (:class:`SyncRefused`, naming every offending file, kind and name)
    unless every object is of an allowed kind in an allowed namespace; each manifest with its
    scope (namespaced or not)."""
    problems: list[str] = []
    checked: list[tuple[Manifest, bool]] = []
    for m in manifests:
        problem = _kind_problem(m, config)
        if problem is None and not isinstance((m.doc.get("metadata") or {}).get("name"), str):
            problem = "metadata.name is missing"
        if problem is None:
            namespaced = await applier.is_namespaced(m.doc["apiVersion"], m.doc["kind"])
            if namespaced is None:
                problem = f"the cluster does not serve {m.doc['apiVersion']} {m.doc['kind']}"
            elif namespaced:
                ns = (m.doc.get("metadata") or {}).get("namespace") or config.namespace
                if ns not in config.allowed_namespaces:
                    problem = (
                        f"namespace {ns!r} is not allowed (allowed: "
                        f"{', '.join(config.allowed_namespaces)}; see --allow-namespace)"
                    )
            if problem is None:
                checked.append((m, bool(namespaced)))
                continue
        problems.append(f"{_describe(m)}: {problem}")
    _refuse(sha, problems)
    return checked


def _refuse(sha: str, problems: list[str]) -> None:
    """Raise :class:`SyncRefused` naming (up to ten of) ``problems``, if there are any."""
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise SyncRefused(f"refusing commit {sha[:12]}, nothing applied: {shown}{more}")


@dataclass(frozen=True)
class _Planned:
    obj: dict[str, Any]  # stamped, without ownership
    manifest: Manifest
    revision: str
    namespaced: bool
    live_uid: str | None  # None: to be created
    adopt: bool = False


async def _plan(
    checked: list[tuple[Manifest, bool]],
    config: SyncConfig,
    applier: Applier,
    revisions: dict[str, str],
    sha: str,
) -> list[_Planned]:
    """What each object needs (create, update, adopt), from the live objects; refuses the whole
    commit when an object exists that this sync does not own and ``adopt`` is off."""
    planned: list[_Planned] = []
    problems: list[str] = []
    seen: set[ObjectRef] = set()
    for m, namespaced in checked:
        obj = stamp(m, config=config, revision=revisions[m.path], namespaced=namespaced)
        ref = ObjectRef.of(obj)
        if ref in seen:
            raise SyncFailed(f"{ref} is defined twice under {config.source.path!r}")
        seen.add(ref)
        live = await applier.get(ref)
        if live is None:
            planned.append(_Planned(obj, m, revisions[m.path], namespaced, None))
            continue
        uid = str((live.get("metadata") or {}).get("uid") or "")
        if owned(live, config):
            planned.append(_Planned(obj, m, revisions[m.path], namespaced, uid))
        elif config.adopt:
            planned.append(_Planned(obj, m, revisions[m.path], namespaced, uid, adopt=True))
        else:
            problems.append(
                f"{m.path}: {ref} exists and was not created by sync {config.name!r}; "
                "pass --adopt to take it over"
            )
    _refuse(sha, problems)
    return planned


async def _apply(p: _Planned, config: SyncConfig, applier: Applier, *, dry_run: bool) -> None:
    uid = p.live_uid
    if uid is None:
        try:
            created = await applier.create(p.obj, dry_run=dry_run)
        except ObjectExists:
            raise SyncRefused(
                f"{p.manifest.path}: {ObjectRef.of(p.obj)} was created by someone else while "
                "syncing; not taken over (pass --adopt to take it over)"
            ) from None
        if dry_run:
            return
        uid = str((created.get("metadata") or {}).get("uid") or "")
        if not uid:
            raise SyncFailed(f"{ObjectRef.of(p.obj)}: the API server returned no uid")
    owned_obj = stamp(
        p.manifest, config=config, revision=p.revision, namespaced=p.namespaced, uid=uid
    )
    await applier.apply(owned_obj, dry_run=dry_run)


def _check_name(config: SyncConfig) -> None:
    if not _NAME.fullmatch(config.name):
        raise SyncFailed(
            f"sync name {config.name!r} must be a label value: up to 63 letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )


async def sync_once(config: SyncConfig, applier: Applier) -> SyncResult:
    """One sync pass; raises :class:`SyncFailed` / :class:`SyncRefused` /
    :class:`~modelfleet.gitops.errors.UntrustedCommit` (or a cluster error) and applies nothing
    when a commit is untrusted, a manifest is unreadable or not allowed, or an object exists
    that this sync does not own."""
    _check_name(config)
    repo, sha = fetch(config.source, config.cache_dir)
    signature = None
    if config.signatures:
        signature = require_trusted_range(
            repo,
            sha,
            config.signatures,
            applied=applied_revision(repo, config.name),
            trust_from=config.trust_from,
        )
    manifests = read_manifests(repo, sha, config.source.path)
    if not manifests and not config.allow_empty:
        raise SyncFailed(
            f"no manifests under {config.source.path!r} at {sha[:12]}; refusing to sync an "
            "empty path (pass --allow-empty if that is intended)"
        )
    checked = await _check(manifests, config, applier, sha)
    revisions: dict[str, str] = {}
    for m, _ in checked:
        if m.path not in revisions:
            revisions[m.path] = last_change(repo, sha, m.path)
    planned = await _plan(checked, config, applier, revisions, sha)
    by_obj = {id(p.obj): p for p in planned}
    ordered = [by_obj[id(obj)] for obj in order(p.obj for p in planned)]
    # The API server validates the whole commit (schema, CEL rules, admission) in a dry run
    # before anything is written: an invalid object late in the commit applies nothing.
    for p in ordered:
        await _apply(p, config, applier, dry_run=True)
    applied, adopted = [], []
    for p in ordered:
        if not config.dry_run:
            await _apply(p, config, applier, dry_run=False)
        applied.append(ObjectRef.of(p.obj))
        if p.adopt:
            adopted.append(applied[-1])
            log.warning("sync %s: adopted %s (existed, not created by this sync)", config.name,
                        applied[-1])  # fmt: skip
        log.info("sync %s: applied %s at %s", config.name, applied[-1], sha[:12])
    keep = {ObjectRef.of(p.obj) for p in planned}
    pruned = await _prune(config, applier, keep) if config.prune else []
    if config.signatures is not None and not config.dry_run:
        mark_applied(repo, config.name, sha)  # the next pass checks only what comes after
    return SyncResult(sha, tuple(applied), tuple(pruned), signature, config.dry_run, tuple(adopted))


async def _prune(config: SyncConfig, applier: Applier, keep: set[ObjectRef]) -> list[ObjectRef]:
    pruned = []
    selector = f"{SYNC_LABEL}={config.name}"
    kinds = sorted(config.allowed_kinds, key=lambda k: -KIND_ORDER.get(k, OTHER_KINDS))
    for kind in kinds:
        namespaced = await applier.is_namespaced(GROUP_VERSION, kind)
        if namespaced is None:
            continue
        where: tuple[str | None, ...] = config.allowed_namespaces if namespaced else (None,)
        for ns in where:
            for item in await applier.list(GROUP_VERSION, kind, selector, ns):
                live = {**item, "apiVersion": GROUP_VERSION, "kind": kind}
                ref = ObjectRef.of(live)
                if ref in keep or prune_opted_out(live):
                    continue
                if not owned(live, config):
                    log.warning(
                        "sync %s: not pruning %s: it carries the sync's label but was not "
                        "created by this sync",
                        config.name,
                        ref,
                    )
                    continue
                uid = str(live["metadata"]["uid"])
                if not config.dry_run:
                    await applier.delete(ref, uid=uid)
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


async def run_sync_loop(
    config: SyncConfig,
    applier: Applier,
    *,
    interval: float,
    stop: asyncio.Event,
    on_result: Callable[[SyncResult | ModelfleetError], None] | None = None,
) -> LoopState:
    """Sync every ``interval`` seconds until ``stop`` is set. A failed pass (fetch, untrusted
    commit, bad manifest, API error) is logged and retried at the next interval; what was
    applied before stays as it is."""
    state = LoopState()
    while not stop.is_set():
        state.passes += 1
        try:
            result = await sync_once(config, applier)
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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    return state

"""The fleet API's in-memory view of the cluster: who a certificate is, what each gateway is told.

Fed by the watches (:mod:`modelfleet.kube.reflector`), read by every request:

* **identity**: ``fingerprint -> the EdgeGateways that claim it``, kept from the objects as they
  are now; an EdgeGateway whose ``spec.certificateFingerprint`` changes or disappears drops out
  with that watch event, so a revoked certificate is refused on its next request, even on an open
  connection or a pending long poll. A fingerprint claimed by more than one EdgeGateway (in any
  namespaces) identifies nobody for as long as it is so, and identifies the one left as soon as
  the others drop it or are deleted; ``on_claims_changed`` hears each such change (the server
  posts Events naming the conflicting objects);
* **desired state**: one :class:`~modelfleet.core.desired.Assigner` per namespace, rebuilt when a
  ModelRelease of that namespace changes; each gateway's answer (body and ETag) is cached until
  its namespace's releases or its own labels change, so a poll with ``If-None-Match`` costs a
  dict lookup;
* **change notification** for long polls: a future per namespace and per gateway, resolved when
  something that can change the answer happens.

Single-threaded: owned by the event loop that serves requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet.core.desired import Assigner, Assignment, Role
from modelfleet.core.types import Gateway, Release

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
ReleaseParser = Callable[[Mapping[str, Any]], Release]
ClaimsListener = Callable[[str, frozenset[Key], frozenset[Key]], None]


@dataclass(frozen=True)
class Desired:
    """One gateway's desired state, rendered: the ``models`` JSON, its ETag and rollout flags."""

    etag: str
    models_json: bytes
    rolling: bool  # some release covering the gateway is rolling out (poll sooner)
    in_active_cohort: bool  # the gateway is told a target being rolled out (report sooner)

    def body(self, gateway: str, poll_after: int) -> bytes:
        return b"".join(
            (
                b'{"gateway":',
                json.dumps(gateway).encode(),
                b',"models":',
                self.models_json,
                b',"pollAfterSeconds":',
                str(poll_after).encode(),
                b"}",
            )
        )


@dataclass
class GatewayEntry:
    """One EdgeGateway as the fleet API needs it."""

    namespace: str
    name: str
    labels: dict[str, str]
    fingerprint: str | None
    status: dict[str, Any]
    gateway: Gateway
    uid: str = ""
    resource_version: str = ""  # of the object ``status`` was read from (the write precondition)
    desired: Desired | None = None
    desired_epoch: int = -1

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


def _entry(obj: Mapping[str, Any]) -> GatewayEntry:
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    spec = obj.get("spec") or {}
    fp = spec.get("certificateFingerprint")
    status = obj.get("status")
    return GatewayEntry(
        namespace=namespace,
        name=name,
        labels=labels,
        fingerprint=fp if isinstance(fp, str) and fp else None,
        status=status if isinstance(status, dict) else {},
        gateway=Gateway(name=name, namespace=namespace, labels=labels),
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
    )


def object_key(obj: Mapping[str, Any]) -> Key:
    """``(namespace, name)`` of an API object."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _replace_all(
    objs: Iterable[Mapping[str, Any]],
    upsert: Callable[[Mapping[str, Any]], None],
    held: Iterable[Key],
    delete: Callable[[Mapping[str, Any]], None],
) -> None:
    """The full set after a (re)list: upsert all, delete what is held and was not listed."""
    seen: set[Key] = set()
    for obj in objs:
        upsert(obj)
        seen.add(object_key(obj))
    for key in [k for k in held if k not in seen]:
        delete({"metadata": {"namespace": key[0], "name": key[1]}})


def _older(a: str, b: str) -> bool:
    """Whether resourceVersion ``a`` is older than ``b`` (etcd revisions; unknown: not older)."""
    return a.isdigit() and b.isdigit() and int(a) < int(b)


def model_entry(a: Assignment) -> dict[str, Any] | None:
    """One item of the ``models`` list of ``GET /v1/desired`` (None: no instruction)."""
    snap = a.snapshot
    if snap is None:
        return None
    return {
        "model": a.model,
        "version": snap.version,
        "digest": snap.digest,
        "artifact": {"uri": snap.uri},
        "signature": {"uri": snap.signature} if snap.signature else None,
        "attestations": [{"uri": uri} for uri in snap.attestations],
        "release": a.release,
        "step": a.step,
    }


def render(gateway: str, assignments: Mapping[str, Assignment]) -> Desired:
    """Render assignments into the cached response parts (models sorted by name)."""
    models = [e for m in sorted(assignments) if (e := model_entry(assignments[m])) is not None]
    models_json = json.dumps(models, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha256(json.dumps(gateway).encode() + b"\0" + models_json).hexdigest()
    return Desired(
        etag=f'W/"{digest[:32]}"',
        models_json=models_json,
        rolling=any(a.step is not None for a in assignments.values()),
        in_active_cohort=any(
            a.role is Role.TARGET and a.step is not None for a in assignments.values()
        ),
    )


def _relevant(r: Release) -> tuple[Any, ...]:
    """What of a release can change what a gateway is told (not cohort counts or gate figures)."""
    st = r.status
    return (
        r.spec.model, r.spec.selector, r.spec.steps, r.salt,
        st.phase, st.rollout.step, st.target, st.stable,
    )  # fmt: skip


class FleetIndex:
    """Gateways, releases and the derived lookups; see the module docstring."""

    def __init__(
        self, parse_release: ReleaseParser, *, on_claims_changed: ClaimsListener | None = None
    ) -> None:
        self._parse_release = parse_release
        self._on_claims_changed = on_claims_changed
        self.gateways: dict[Key, GatewayEntry] = {}
        self.claims: dict[str, set[Key]] = {}  # fingerprint -> EdgeGateways that claim it
        self.releases: dict[Key, Release] = {}
        self._epoch: dict[str, int] = {}
        self._assigners: dict[str, Assigner] = {}
        # long polls: namespace -> gateway name -> the future its parked polls wait on
        self._poll_waiters: dict[str, dict[str, asyncio.Future[None]]] = {}
        self._status_waiters: dict[Key, asyncio.Future[None]] = {}
        self.closing = False

    # ------------------------------------------------------------------ identity

    def identify(self, fingerprint: str) -> GatewayEntry | None:
        """The gateway whose enrolled certificate has this fingerprint: None when no EdgeGateway
        claims it, or more than one does (see :meth:`claimants`)."""
        keys = self.claims.get(fingerprint)
        if keys is None or len(keys) != 1:
            return None
        (key,) = keys
        return self.gateways.get(key)

    def claimants(self, fingerprint: str) -> tuple[Key, ...]:
        """Every EdgeGateway whose ``spec.certificateFingerprint`` is ``fingerprint``, sorted."""
        return tuple(sorted(self.claims.get(fingerprint, ())))

    def conflicts(self) -> dict[str, tuple[Key, ...]]:
        """Fingerprints claimed by more than one EdgeGateway, with their claimants."""
        return {fp: tuple(sorted(keys)) for fp, keys in self.claims.items() if len(keys) > 1}

    def _claim(self, fingerprint: str | None, key: Key, *, add: bool) -> None:
        if not fingerprint:
            return
        before = frozenset(self.claims.get(fingerprint, ()))
        after = before | {key} if add else before - {key}
        if after == before:
            return
        if after:
            self.claims[fingerprint] = set(after)
        else:
            self.claims.pop(fingerprint, None)
        if len(after) > 1:
            log.warning(
                "EdgeGateways %s share certificate fingerprint %s: refusing it until one is left",
                ", ".join(f"{ns}/{name}" for ns, name in sorted(after)), fingerprint,
            )  # fmt: skip
        for other in before | after:  # their identity changed: wake their long polls
            if other != key:
                self._wake_gateway(other)
        if self._on_claims_changed is not None and (len(before) > 1 or len(after) > 1):
            self._on_claims_changed(fingerprint, before, after)

    # ------------------------------------------------------------------ gateways

    def upsert_gateway(self, obj: Mapping[str, Any]) -> None:
        new = _entry(obj)
        key = new.key
        old = self.gateways.get(key)
        if old is not None and old.labels == new.labels:
            new.desired, new.desired_epoch = old.desired, old.desired_epoch
        if old is not None and _older(new.resource_version, old.resource_version):
            # A watch event older than our own write's answer: keep the newer status.
            new.status, new.resource_version = old.status, old.resource_version
        self.gateways[key] = new
        if old is None or old.resource_version != new.resource_version:
            self._status_moved(key)
        if old is not None and old.fingerprint != new.fingerprint:
            self._claim(old.fingerprint, key, add=False)
        self._claim(new.fingerprint, key, add=True)
        if old is None or old.labels != new.labels or old.fingerprint != new.fingerprint:
            self._wake_gateway(key)

    def update_status(self, obj: Mapping[str, Any]) -> None:
        """Refresh a gateway's status from an object the API server just returned."""
        meta = obj.get("metadata") or {}
        entry = self.gateways.get(object_key(obj))
        status = obj.get("status")
        version = str(meta.get("resourceVersion") or "")
        if entry is None or not isinstance(status, dict):
            return
        if not _older(version, entry.resource_version):
            moved = version != entry.resource_version
            entry.status, entry.resource_version = status, version
            if moved:
                self._status_moved(entry.key)

    def delete_gateway(self, obj: Mapping[str, Any]) -> None:
        key = object_key(obj)
        old = self.gateways.pop(key, None)
        if old is not None:
            self._claim(old.fingerprint, key, add=False)
        self._wake_gateway(key)
        self._status_moved(key)

    def replace_gateways(self, objs: Iterable[Mapping[str, Any]]) -> None:
        """The full set after a (re)list: upsert all, delete the rest."""
        _replace_all(objs, self.upsert_gateway, self.gateways, self.delete_gateway)

    # ------------------------------------------------------------------ releases

    def upsert_release(self, obj: Mapping[str, Any]) -> None:
        key = object_key(obj)
        try:
            release = self._parse_release(obj)
        except Exception as exc:  # an unreadable release covers no gateway; say which and why
            log.warning("ModelRelease %s/%s ignored: %s", key[0], key[1], exc)
            if self.releases.pop(key, None) is not None:
                self._releases_changed(key[0])
            return
        old = self.releases.get(key)
        self.releases[key] = release
        if old is None or _relevant(old) != _relevant(release):
            self._releases_changed(key[0])

    def delete_release(self, obj: Mapping[str, Any]) -> None:
        key = object_key(obj)
        if self.releases.pop(key, None) is not None:
            self._releases_changed(key[0])

    def replace_releases(self, objs: Iterable[Mapping[str, Any]]) -> None:
        _replace_all(objs, self.upsert_release, self.releases, self.delete_release)

    def _releases_changed(self, namespace: str) -> None:
        self._epoch[namespace] = self._epoch.get(namespace, 0) + 1
        self._assigners.pop(namespace, None)
        for fut in self._poll_waiters.pop(namespace, {}).values():
            if not fut.done():
                fut.set_result(None)

    # ------------------------------------------------------------------ desired state

    def desired(self, entry: GatewayEntry) -> Desired:
        """The gateway's desired state (cached until its releases or labels change)."""
        epoch = self._epoch.get(entry.namespace, 0)
        if entry.desired is not None and entry.desired_epoch == epoch:
            return entry.desired
        assigner = self._assigners.get(entry.namespace)
        if assigner is None:
            assigner = Assigner(r for (ns, _), r in self.releases.items() if ns == entry.namespace)
            self._assigners[entry.namespace] = assigner
        entry.desired = render(entry.name, assigner.desired_state(entry.gateway))
        entry.desired_epoch = epoch
        return entry.desired

    # ------------------------------------------------------------------ long poll

    def change_future(self, key: Key) -> asyncio.Future[None]:
        """A future resolved when the namespace's releases or this gateway change.

        One per gateway, never one shared by the namespace: a change of releases resolves each
        parked gateway's future, so ending a parked poll costs the same however many others are
        parked (a shared future would hold one callback per parked poll, and each poll's end
        would pass over all of them to remove its own)."""
        waiters = self._poll_waiters.setdefault(key[0], {})
        fut = waiters.get(key[1])
        if fut is None or fut.done():
            fut = waiters[key[1]] = asyncio.get_running_loop().create_future()
        return fut

    def status_changed(self, key: Key) -> asyncio.Future[None]:
        """A future resolved when this gateway's copy of status changes (or it is deleted):
        what a report waiting for another replica's write waits on. Not the long-poll futures:
        status writes must not wake polls."""
        fut = self._status_waiters.get(key)
        if fut is None or fut.done():
            fut = self._status_waiters[key] = asyncio.get_running_loop().create_future()
        return fut

    def _status_moved(self, key: Key) -> None:
        fut = self._status_waiters.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _wake_gateway(self, key: Key) -> None:
        fut = self._poll_waiters.get(key[0], {}).pop(key[1], None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def wake_all(self, *, closing: bool = False) -> None:
        """Resolve every pending future; with ``closing`` long polls end (shutdown)."""
        self.closing = self.closing or closing
        for waiters in self._poll_waiters.values():
            for fut in waiters.values():
                if not fut.done():
                    fut.set_result(None)
        self._poll_waiters.clear()

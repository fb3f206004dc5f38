"""The agent's :class:`~modelfleet.agent.verifier.Verifier` over :mod:`modelfleet.trust`, and a
verified-digest cache that N simulated agents can share.

Verification runs in a worker thread (hashing releases the GIL). The model is laid out in
``<slot>/model``: an archive is unpacked there by the trust layer's extractor, which never writes
through a link nor outside the folder. With a model-signing signature, ``verify_artifact`` reads
the archive once writing nothing, checking every member against the signed manifest, then
unpacks only what that read verified; after a plain bundle over the archive bytes (or a cache hit
on a verified digest: the same bytes), the extractor's safety rules apply alone. Members under the
policy's ``ignorePaths`` are never unpacked. A single file is hard-linked there under its URI's
file name.

**The policy file is read again when it changes** (:class:`PolicyFile`, a ``stat`` per look): a
revocation rolled out to the device's policy file takes effect on the next reconcile, without a
restart. Every slot marker records the policy digest it was verified under, so a changed policy
re-verifies the slots before anything relies on them (``ModelInstaller.revalidate``), and a slot
verified under another policy is never reused, re-activated or rolled back to. A new file that
cannot be used is logged and the previous policy stays in force (it cannot add a revocation it
cannot express).

The cache maps (artifact digest, signature digest, attestations digest, policy digest) to the
verification result. A hit still hashes this agent's own bytes and compares them with the
expected digest, and still lays out the slot: only the signature and provenance checks, which
depend on nothing but those four inputs, are skipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from modelfleet.agent.slots import remove_path
from modelfleet.agent.verifier import MODEL_DIR, VerifiedInstall, VerifyRequest, file_sha256
from modelfleet.trust.archive import extract_archive, is_archive
from modelfleet.trust.digest import digest_file
from modelfleet.trust.errors import VerificationError
from modelfleet.trust.policy import Policy, load_policy
from modelfleet.trust.verified import VerifiedArtifact
from modelfleet.trust.verify import verify_artifact

CacheKey = tuple[str, str, str, str]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry:
    signer: str


class VerifiedCache:
    """Thread-safe map of verified (digest, signature, attestations, policy) tuples."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[CacheKey, _Entry] = {}
        self._inflight: dict[CacheKey, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def lock_for(self, key: CacheKey) -> threading.Lock:
        with self._lock:
            return self._inflight.setdefault(key, threading.Lock())

    def get(self, key: CacheKey) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
            else:
                self.hits += 1
            return entry

    def put(self, key: CacheKey, entry: _Entry) -> None:
        with self._lock:
            self._entries[key] = entry


def policy_fingerprint(policy: Policy) -> str:
    """A stable digest of the loaded policy, key material included (files it references too);
    the same in every process (no set ordering or object identity leaks in)."""
    text = json.dumps(_canonical(policy), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# Complexity waiver: one return per verification outcome, each with its own reason.
def _canonical(value: object) -> object:  # noqa: PLR0911
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset):
        return sorted((_canonical(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


class PolicyFile:
    """A TrustPolicy file, loaded again whenever it changes on disk (module docstring).

    The first load fails loudly (a :class:`VerificationError`): an agent never starts without a
    usable policy. Thread-safe: the installer asks on the event loop, verification in a thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._policy = load_policy(path)
        self._digest = policy_fingerprint(self._policy)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> tuple[Policy, str]:
        """The policy in force and its digest, after reading the file again if it changed."""
        with self._lock:
            stamp = self._stat()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    policy = load_policy(self.path)
                except VerificationError as exc:
                    log.error(
                        "trust policy %s changed but cannot be used (%s); the policy loaded "
                        "before stays in force",
                        self.path, exc,
                    )  # fmt: skip
                else:
                    digest = policy_fingerprint(policy)
                    if digest != self._digest:
                        log.warning(
                            "trust policy %s changed (%s -> %s): slots are verified again "
                            "before use",
                            self.path, self._digest, digest,
                        )  # fmt: skip
                    self._policy, self._digest = policy, digest
            return self._policy, self._digest


class TrustVerifier:
    """Verifies against one TrustPolicy file, read again when it changes (fail closed)."""

    def __init__(self, policy_file: Path, *, cache: VerifiedCache | None = None) -> None:
        self.policy_file = policy_file
        self._file: PolicyFile | None = PolicyFile(policy_file)
        self._inline: tuple[Policy, str] | None = None
        self._cache = cache

    @classmethod
    def from_policy(cls, policy: Policy, *, cache: VerifiedCache | None = None) -> TrustVerifier:
        self = cls.__new__(cls)
        self.policy_file = Path("<inline>")
        self._file = None
        self._inline = (policy, policy_fingerprint(policy))
        self._cache = cache
        return self

    def _current(self) -> tuple[Policy, str]:
        if self._file is not None:
            return self._file.current()
        assert self._inline is not None
        return self._inline

    @property
    def policy(self) -> Policy:
        """The policy in force now."""
        return self._current()[0]

    @property
    def policy_digest(self) -> str:
        return self._current()[1]

    async def prepare(self) -> None:
        """Nothing to warm up in-process."""

    async def verify(self, request: VerifyRequest) -> VerifiedInstall:
        return await asyncio.to_thread(self.verify_sync, request)

    def verify_sync(self, req: VerifyRequest) -> VerifiedInstall:
        """Verify and lay out the slot (blocking; the worker process calls this too). With
        ``recheck`` nothing in the slot is touched: an archive is unpacked to a scratch folder."""
        policy, policy_digest = self._current()
        if req.recheck:
            verified = _verify(req, policy, unpack_to=None)
            return VerifiedInstall(
                digest=verified.digest,
                model_path=MODEL_DIR,
                signer=verified.signer,
                signature_digest=file_sha256(req.signature),
            )
        model_dir = req.model_dir
        remove_path(model_dir)
        sig_digest = file_sha256(req.signature) if req.signature is not None else ""
        att_digest = ",".join(file_sha256(a) for a in req.attestations)
        key: CacheKey = (req.expected_digest, sig_digest, att_digest, policy_digest)
        if self._cache is None:
            return self._full(req, sig_digest, policy)
        with self._cache.lock_for(key):  # one full verification per key, the rest wait
            entry = self._cache.get(key)
            if entry is None:
                result = self._full(req, sig_digest, policy)
                self._cache.put(key, _Entry(signer=result.signer))
                return result
        digest = digest_file(req.artifact)
        if digest != req.expected_digest:
            raise VerificationError(
                "digest", f"artifact is {digest}, the release expects {req.expected_digest}"
            )
        self._lay_out(req, policy)
        return VerifiedInstall(
            digest=digest,
            model_path=MODEL_DIR,
            signer=entry.signer,
            signature_digest=sig_digest,
        )

    def _full(self, req: VerifyRequest, sig_digest: str, policy: Policy) -> VerifiedInstall:
        verified = _verify(
            req, policy, unpack_to=req.model_dir if is_archive(req.artifact) else None
        )
        if verified.model_path is None:
            self._lay_out(req, policy)
        return VerifiedInstall(
            digest=verified.digest,
            model_path=MODEL_DIR,
            signer=verified.signer,
            signature_digest=sig_digest,
        )

    def _lay_out(self, req: VerifyRequest, policy: Policy) -> None:
        """``<slot>/model``: the unpacked archive, or the single file under its own name."""
        model_dir = req.model_dir
        remove_path(model_dir)
        if is_archive(req.artifact):
            try:
                extract_archive(
                    req.artifact,
                    model_dir,
                    policy.hashing,
                    ignore=tuple(policy.hashing.ignore_paths),
                )
            except BaseException:
                shutil.rmtree(model_dir, ignore_errors=True)
                raise
            return
        model_dir.mkdir(parents=True)
        dest = model_dir / req.artifact_name
        try:
            os.link(req.artifact, dest)
        except OSError:
            shutil.copyfile(req.artifact, dest)


def _verify(req: VerifyRequest, policy: Policy, *, unpack_to: Path | None) -> VerifiedArtifact:
    """The trust layer's verification of a request's files (``unpack_to``: keep the archive
    unpacked there)."""
    return verify_artifact(
        policy,
        req.artifact,
        expected_digest=req.expected_digest,
        signature=req.signature,
        attestations=req.attestations,
        unpack_to=unpack_to,
    )

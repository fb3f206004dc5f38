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

The cache maps (artifact digest, signature digest, attestations digest, policy digest) to the
verification result. A hit still hashes this agent's own bytes and compares them with the
expected digest, and still lays out the slot: only the signature and provenance checks, which
depend on nothing but those four inputs, are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from modelfleet.agent.verifier import MODEL_DIR, VerifiedInstall, VerifyRequest, file_sha256
from modelfleet.trust.archive import extract_archive, is_archive
from modelfleet.trust.digest import digest_file
from modelfleet.trust.errors import VerificationError
from modelfleet.trust.policy import Policy, load_policy
from modelfleet.trust.verify import verify_artifact

CacheKey = tuple[str, str, str, str]


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


def _canonical(value: object) -> object:
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


class TrustVerifier:
    """Verifies against one TrustPolicy file, loaded once at start-up (fail closed)."""

    def __init__(self, policy_file: Path, *, cache: VerifiedCache | None = None) -> None:
        self.policy_file = policy_file
        self.policy = load_policy(policy_file)
        self._policy_digest = policy_fingerprint(self.policy)
        self._cache = cache

    @classmethod
    def from_policy(cls, policy: Policy, *, cache: VerifiedCache | None = None) -> TrustVerifier:
        self = cls.__new__(cls)
        self.policy_file = Path("<inline>")
        self.policy = policy
        self._policy_digest = policy_fingerprint(policy)
        self._cache = cache
        return self

    @property
    def policy_digest(self) -> str:
        return self._policy_digest

    async def prepare(self) -> None:
        """Nothing to warm up in-process."""

    async def verify(self, request: VerifyRequest) -> VerifiedInstall:
        return await asyncio.to_thread(self.verify_sync, request)

    def verify_sync(self, req: VerifyRequest) -> VerifiedInstall:
        """Verify and lay out the slot (blocking; the worker process calls this too). With
        ``recheck`` nothing in the slot is touched: an archive is read, never unpacked."""
        sig_digest = file_sha256(req.signature)
        if req.recheck:
            return self._full(req, sig_digest, lay_out=False)
        _clear(req.model_dir)
        att_digest = ",".join(file_sha256(a) for a in req.attestations)
        key: CacheKey = (req.expected_digest, sig_digest, att_digest, self._policy_digest)
        if self._cache is None:
            return self._full(req, sig_digest)
        with self._cache.lock_for(key):  # one full verification per key, the rest wait
            entry = self._cache.get(key)
            if entry is None:
                result = self._full(req, sig_digest)
                self._cache.put(key, _Entry(signer=result.signer))
                return result
        digest = digest_file(req.artifact)
        if digest != req.expected_digest:
            raise VerificationError(
                "digest", f"artifact is {digest}, the release expects {req.expected_digest}"
            )
        self._lay_out(req)
        return VerifiedInstall(
            digest=digest,
            model_path=MODEL_DIR,
            signer=entry.signer,
            signature_digest=sig_digest,
        )

    def _full(
        self, req: VerifyRequest, sig_digest: str, *, lay_out: bool = True
    ) -> VerifiedInstall:
        unpack = lay_out and is_archive(req.artifact)
        verified = verify_artifact(
            self.policy,
            req.artifact,
            expected_digest=req.expected_digest,
            signature=req.signature,
            attestations=req.attestations,
            unpack_to=req.model_dir if unpack else None,
        )
        if lay_out and verified.model_path is None:
            self._lay_out(req)
        return VerifiedInstall(
            digest=verified.digest,
            model_path=MODEL_DIR,
            signer=verified.signer,
            signature_digest=sig_digest,
        )

    def _lay_out(self, req: VerifyRequest) -> None:
        """``<slot>/model``: the unpacked archive, or the single file under its own name."""
        model_dir = req.model_dir
        _clear(model_dir)
        if is_archive(req.artifact):
            try:
                extract_archive(
                    req.artifact,
                    model_dir,
                    self.policy.hashing,
                    ignore=tuple(self.policy.hashing.ignore_paths),
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


def _clear(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

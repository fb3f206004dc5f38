"""On-device verification: the :class:`Verifier` protocol the agent calls, and the cache the
simulator shares between agents.

The agent verifies every artifact against its *own* TrustPolicy file before activation; nothing
the fleet API serves is trust material (it only names URIs and digests). The implementation over
:mod:`modelfleet.trust` lives in :mod:`modelfleet.agent.trustverifier`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: Folder inside a slot that holds the usable model (unpacked archive, or the single file).
MODEL_DIR = "model"


@dataclass(frozen=True)
class VerifyRequest:
    """One downloaded artifact in a slot, to verify and to lay out as ``<slot>/model``."""

    model: str
    version: str
    expected_digest: str
    slot_dir: Path
    artifact: Path
    artifact_name: str  # file name for a single-file model (from the artifact URI)
    signature: Path | None
    attestations: tuple[Path, ...] = ()
    recheck: bool = False  # re-verify a laid-out slot read-only (the slot may be active)

    @property
    def model_dir(self) -> Path:
        return self.slot_dir / MODEL_DIR


@dataclass(frozen=True)
class VerifiedInstall:
    """What verification established; the slot's ``.verified`` marker records it."""

    digest: str
    model_path: str
    signer: str = ""
    signature_digest: str = ""


class Verifier(Protocol):
    """Checks digest, signature, signer and provenance; raises
    :class:`modelfleet.trust.errors.VerificationError` with the failed check."""

    @property
    def policy_digest(self) -> str:
        """sha256 of the policy in force (a marker from another policy is re-verified)."""
        ...

    async def prepare(self) -> None:
        """A hint that :meth:`verify` will be called soon (e.g. start a worker during the
        download, so its start-up cost is hidden)."""
        ...

    async def verify(self, request: VerifyRequest) -> VerifiedInstall:
        """Verify ``request.artifact`` and lay out ``request.model_dir``."""
        ...


def file_sha256(path: Path | None) -> str:
    """``sha256:<hex>`` of a small file (signatures, policies), or "" for None."""
    if path is None:
        return ""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def files_sha256(paths: Sequence[Path]) -> str:
    """One digest over several small files, in order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return "sha256:" + h.hexdigest()

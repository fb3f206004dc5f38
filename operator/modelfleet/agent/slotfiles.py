"""The files of one install in a slot: the artifact, its signature bundle and attestations.

They are fetched into a fresh slot from the URIs the desired model names (:func:`fetch_files`;
a file already there, e.g. resumed after a restart, is kept), named in the slot's ``.verified``
marker once verified, and found again from that marker to re-verify the slot under a new trust
policy (:meth:`SlotFiles.recorded`). Both ways build the same :class:`~.verifier.VerifyRequest`.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from modelfleet.agent.context import InstallerContext
from modelfleet.agent.protocol import DesiredModel
from modelfleet.agent.slots import Marker
from modelfleet.agent.verifier import VerifiedInstall, VerifyRequest
from modelfleet.trust.errors import VerificationError

log = logging.getLogger(__name__)

MAX_SIGNATURE_BYTES = 16 * 1024 * 1024
SIGNATURE_FILE = "signature.json"


def artifact_file(digest: str) -> str:
    """The artifact's file name in a slot (the digest tells installs apart)."""
    return f"artifact.{digest.removeprefix('sha256:')[:16]}"


class SlotFiles(NamedTuple):
    """Where one install's files are in its slot."""

    slot_dir: Path
    artifact: Path
    signature: Path | None
    attestations: tuple[Path, ...]

    @classmethod
    def recorded(cls, marker: Marker, slot_dir: Path) -> SlotFiles:
        """The files ``marker`` names in ``slot_dir``; an error if it names no artifact."""
        if not marker.artifact:
            raise VerificationError("input", "the slot does not record its artifact")
        return cls(
            slot_dir,
            slot_dir / marker.artifact,
            slot_dir / marker.signature if marker.signature else None,
            tuple(slot_dir / a for a in marker.attestations),
        )

    def marker(
        self, d: DesiredModel, verified: VerifiedInstall, *, policy_digest: str, verified_at: str
    ) -> Marker:
        """The ``.verified`` marker for these files once ``verified`` as version ``d``."""
        return Marker(
            digest=verified.digest,
            version=d.version,
            model_path=verified.model_path,
            artifact=self.artifact.name,
            signature=self.signature.name if self.signature else "",
            attestations=tuple(a.name for a in self.attestations),
            signature_digest=verified.signature_digest,
            policy_digest=policy_digest,
            verified_at=verified_at,
        )

    def request(
        self, model: str, d: DesiredModel | Marker, artifact_name: str, *, recheck: bool = False
    ) -> VerifyRequest:
        """What to verify: these files, as version ``d`` of ``model``."""
        return VerifyRequest(
            model=model,
            version=d.version,
            expected_digest=d.digest,
            artifact_name=artifact_name,
            recheck=recheck,
            **self._asdict(),  # slot_dir, artifact, signature, attestations
        )


async def fetch_files(
    ctx: InstallerContext, d: DesiredModel, slot_dir: Path, who: str
) -> SlotFiles:
    """Fetch what ``d`` names into ``slot_dir`` (raises :class:`~.download.DownloadError`)."""
    artifact = slot_dir / artifact_file(d.digest)
    if not artifact.exists():
        log.info("%s: downloading %s from %s", who, d.version, d.artifact_uri)
        await ctx.fetcher.fetch(d.artifact_uri, artifact, max_bytes=ctx.max_artifact_bytes)
    signature: Path | None = None
    if d.signature_uri:
        signature = slot_dir / SIGNATURE_FILE
        if not signature.exists():
            await ctx.fetcher.fetch(d.signature_uri, signature, max_bytes=MAX_SIGNATURE_BYTES)
    attestations: list[Path] = []
    for i, uri in enumerate(d.attestation_uris):
        path = slot_dir / f"attestation-{i}.json"
        if not path.exists():
            await ctx.fetcher.fetch(uri, path, max_bytes=MAX_SIGNATURE_BYTES)
        attestations.append(path)
    return SlotFiles(slot_dir, artifact, signature, tuple(attestations))


def file_name(uri: str, model: str) -> str:
    """The file name a single-file model keeps: the last segment of its URI, else ``model``."""
    name = PurePosixPath(unquote(urlsplit(uri).path)).name
    return name if name and name not in (".", "..") else model

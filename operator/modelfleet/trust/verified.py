"""VerifiedArtifact: the proof of a successful verification, and the only thing rollouts accept.

Instances can only be made by this package's verifiers (a private token guards the constructor),
so holding one means the digest, signature, signer, provenance and denylist checks all passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from modelfleet.trust.provenance import Provenance
from modelfleet.trust.signer import Signer

_TOKEN = object()


@dataclass(frozen=True)
class VerifiedArtifact:
    """A model that passed every check of a TrustPolicy."""

    digest: str  # "sha256:<hex>" of the artifact bytes (of the model manifest for a folder)
    model_digest: str | None  # model-signing root digest of the model's files, if model-signed
    policy: str
    signers: tuple[Signer, ...]  # every signature that verified (several for require: all)
    provenance: tuple[Provenance, ...]
    verified_at: datetime
    model_path: Path | None = None  # where an archive was unpacked, when asked to keep it
    _token: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._token is not _TOKEN or not self.signers:
            raise TypeError("VerifiedArtifact is made only by modelfleet.trust verification")

    @property
    def authority(self) -> str:
        """Every authority that signed, in the policy's order (``a, b``)."""
        return ", ".join(dict.fromkeys(s.authority for s in self.signers))

    @property
    def authority_kind(self) -> Literal["key", "certificate", "keyless"]:
        return self.signers[0].kind

    @property
    def signature_format(self) -> Literal["model-signing", "sigstore-bundle"]:
        return "model-signing" if self.model_digest else "sigstore-bundle"

    @property
    def signer(self) -> str:
        """The first signer's identity: a certificate identity, or the "sha256:<hex>" key id."""
        return self.signers[0].identity

    @property
    def issuer(self) -> str | None:
        return self.signers[0].issuer

    @property
    def tlog_index(self) -> int | None:
        return self.signers[0].tlog_index

    @property
    def integrated_time(self) -> datetime | None:
        return self.signers[0].integrated_time

    def to_status(self) -> dict[str, Any]:
        """The ``status.verification`` object of a ModelRelease (camelCase, JSON-ready)."""
        status: dict[str, Any] = {
            "verified": True,
            "digest": self.digest,
            "policy": self.policy,
            "authority": self.authority,
            "signer": self.signer,
            "at": self.verified_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self.model_digest:
            status["modelDigest"] = self.model_digest
        if self.issuer:
            status["issuer"] = self.issuer
        if self.tlog_index is not None:
            status["tlogIndex"] = self.tlog_index
        if self.integrated_time is not None:
            status["integratedTime"] = self.integrated_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.provenance:
            p = self.provenance[0]
            status["provenance"] = {
                k: v
                for k, v in {
                    "builder": p.builder_id,
                    "repo": p.source_repository,
                    "ref": p.ref,
                }.items()
                if v
            }
        return status


def proof(  # noqa: PLR0917 - the fields, in order
    policy: str,
    digest: str,
    model_digest: str | None,
    signers: tuple[Signer, ...],
    provenance: tuple[Provenance, ...],
    now: datetime,
    model_path: Path | None = None,
) -> VerifiedArtifact:
    """The proof of a verification that passed (only this package's verifiers call it)."""
    return VerifiedArtifact(
        digest, model_digest, policy, signers, provenance, now, model_path, _TOKEN
    )

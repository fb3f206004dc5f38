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
    authority: str
    authority_kind: Literal["key", "certificate", "keyless"]
    signature_format: Literal["model-signing", "sigstore-bundle"]
    signer: str  # certificate identity, or "sha256:<hex>" key id
    issuer: str | None
    tlog_index: int | None
    integrated_time: datetime | None
    provenance: tuple[Provenance, ...]
    verified_at: datetime
    model_path: Path | None = None  # where an archive was unpacked, when asked to keep it
    signers: tuple[Signer, ...] = ()  # every signature that verified (several for require: all)
    _token: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._token is not _TOKEN:
            raise TypeError("VerifiedArtifact is made only by modelfleet.trust verification")

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


def proof(
    policy: str,
    *,
    digest: str,
    model_digest: str | None,
    signers: tuple[Signer, ...],
    provenance: tuple[Provenance, ...],
    now: datetime,
    model_path: Path | None = None,
) -> VerifiedArtifact:
    """The proof of a verification that passed (only this package's verifiers call it).

    ``authority`` names every authority that signed; the signer fields are the first signer's.
    """
    first = signers[0]
    return VerifiedArtifact(
        digest=digest,
        model_digest=model_digest,
        policy=policy,
        authority=", ".join(dict.fromkeys(s.authority for s in signers)),
        authority_kind=first.kind,
        signature_format="model-signing" if model_digest else "sigstore-bundle",
        signer=first.identity,
        issuer=first.issuer,
        tlog_index=first.tlog_index,
        integrated_time=first.integrated_time,
        provenance=provenance,
        verified_at=now,
        model_path=model_path,
        signers=signers,
        _token=_TOKEN,
    )

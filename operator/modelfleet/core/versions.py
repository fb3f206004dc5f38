"""One concrete version of a model, and what verifying it established.

A :class:`VersionSnapshot` is what ``status.stable`` and ``status.target`` hold and what a gateway
is told to run; its :class:`Verification` records who signed it and what the provenance said.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Provenance:
    """What the verified provenance attestation says about the build."""

    predicate_type: str | None = None
    builder: str | None = None
    repo: str | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of verifying one artifact (``status.verification``).

    The controller builds this from the trust layer's result and hands it to ``decide``;
    ``digest`` says which artifact it is about, ``generation`` which spec generation asked.
    """

    verified: bool
    digest: str
    reason: str = ""
    model_digest: str | None = None
    """The signed model's manifest digest (model_signing's in-toto subject), if model-signed."""
    authority: str | None = None
    signer: str | None = None
    issuer: str | None = None
    key_id: str | None = None
    tlog_index: int | None = None
    integrated_time: str | None = None
    provenance: Provenance | None = None
    at: datetime | None = None
    generation: int | None = None


@dataclass(frozen=True, slots=True)
class VersionSnapshot:
    """One concrete, addressable version of a model (``status.stable`` / ``status.target``)."""

    version: str
    digest: str
    uri: str
    signature: str | None = None
    attestations: tuple[str, ...] = ()
    since: datetime | None = None
    verification: Verification | None = None
    revoked: bool = False
    """The TrustPolicy denies it now (``status.stable.revoked``, set by ``decide`` from the
    policy's ``deniedDigests``): it is told to no gateway, so none that does not run it already
    installs it (``desired_state``)."""

    def revoked_by(self, denied: frozenset[str]) -> bool:
        """Whether ``denied`` names this version's artifact digest or its model digest."""
        model = self.verification.model_digest if self.verification is not None else None
        return self.digest in denied or (model is not None and model in denied)

    def same_version(self, other: VersionSnapshot | None) -> bool:
        """Same version name and same bytes (what history and reports are matched on)."""
        return other is not None and (self.version, self.digest) == (other.version, other.digest)

    def same_artifact(self, other: VersionSnapshot | None) -> bool:
        """Same version, bytes, and signature/attestation locations (what a spec change is)."""
        return (
            other is not None
            and self.same_version(other)
            and (self.uri, self.signature, self.attestations)
            == (other.uri, other.signature, other.attestations)
        )

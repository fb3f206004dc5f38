"""Signer: who signed, as one verified signature proved it.

Every way a signature can verify (a bare key, an X.509 certificate chain, a Sigstore keyless
certificate with its transparency-log entry) ends in one :class:`Signer`, so the rest of the trust
layer (composition of authorities, attestations, :class:`~modelfleet.trust.VerifiedArtifact`,
the operator's ``status.verification``) reads one record, whatever the kind of authority.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from cryptography import x509

AuthorityKind = Literal["key", "certificate", "keyless"]


@dataclass(frozen=True)
class Signer:
    """One verified signature: the authority of the policy that accepted it, and what it proved."""

    authority: str  # the name of the TrustPolicy authority whose check passed
    kind: AuthorityKind
    identity: str  # the certificate identity (subject / SANs), or the key id for a bare key
    issuer: str | None = None  # the OIDC issuer (keyless)
    key_id: str | None = None  # "sha256:<hex>" of the public key (key authorities)
    tlog_index: int | None = None  # the transparency-log entry that recorded the signature
    integrated_time: datetime | None = None  # when the log integrated it (verified time)
    certificate: x509.Certificate | None = field(default=None, repr=False, compare=False)

"""Errors of the trust layer: every rejection is a :class:`VerificationError` naming its check.

The checks, in the order a verification runs them (``CHECKS``), are the vocabulary shared by the
operator (``status.verification.reason``), the agent (its ``Failed`` report) and the CLI (the one
line it prints). A rejection is always ``"<check>: <reason>"``.
"""

from __future__ import annotations

from modelfleet.errors import ModelfleetError

#: Every check name, in the order a verification runs them; later means "got further".
CHECKS: tuple[str, ...] = (
    "policy",  # the TrustPolicy is empty, unparsable, or its material cannot be loaded
    "input",  # a file named by the caller is missing or unreadable
    "denylist",  # the digest is revoked by spec.deniedDigests
    "digest",  # the bytes do not hash to the expected digest
    "archive",  # the archive is malformed or unsafe (traversal, links, size)
    "bundle",  # the signature file is not a bundle we can parse
    "signature-type",  # the signature is a signed statement of another kind, not a model signature
    "hashing",  # the signature's hashing config differs from the policy's pinned one
    "trust-root",  # the trust root cannot be loaded or lacks what the signature needs
    "signature",  # the cryptographic signature does not verify
    "certificate",  # the certificate chain, validity window or key usage is wrong
    "transparency-log",  # inclusion proof, checkpoint, SET or log-entry consistency failed
    "issuer",  # the OIDC issuer does not match any identity of the authority
    "identity",  # the signer identity (subject / SAN) does not match
    "authority",  # no authority of the policy applies to this kind of signature
    "integrity",  # the model's files differ from what was signed
    "provenance",  # a required attestation is missing or fails its checks
    "internal",  # an unexpected error: never a pass, reported with its cause
)


class VerificationError(ModelfleetError):
    """A model, artifact or bundle was not verified. ``check`` names the check that failed."""

    def __init__(self, check: str, reason: str) -> None:
        if check not in CHECKS:  # a programming error, still a rejection
            reason = f"{reason} (unknown check {check!r})"
        self.check = check
        self.reason = " ".join(reason.split())
        super().__init__(f"{check}: {self.reason}")

    @property
    def stage(self) -> int:
        """How far the verification got before this check failed (for ranking failures)."""
        return CHECKS.index(self.check) if self.check in CHECKS else -1

"""The entry points: verify an artifact (operator, agent) or a model on disk (CLI) against a policy.

Order of checks (cheapest and most decisive first): policy → denylist (expected digest) → digest
of the artifact bytes, streamed → signature type → signatures and signers, against the policy's
composed authorities (:mod:`~modelfleet.trust.authorities`) → pinned hashing → denylist (model
digest) → unpacking (archives, safely) and the model's files against the signed manifest
(:mod:`~modelfleet.trust.contents`) → required attestations. What counts as a signature, and
signature sets: :mod:`~modelfleet.trust.signatures`.

**Revocation.** ``deniedDigests`` is matched against the artifact's digest and against the signed
model's manifest digest (model_signing's in-toto subject digest, ``status.verification
.modelDigest``). Repacking a revoked model's files gives new artifact bytes but the same manifest
digest. A caller that knows which model an artifact verified as (the operator, from status) passes
``revoked_models={artifact digest: model digest}``: an artifact digest on the denylist then revokes
that model too. Any exception that is not a :class:`VerificationError` is turned into one (check
``internal``): nothing but a fully successful run yields a :class:`VerifiedArtifact`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from modelfleet.trust.archive import ArchiveLimits
from modelfleet.trust.authorities import endorse
from modelfleet.trust.contents import check_artifact, check_model
from modelfleet.trust.digest import digest_file, root_digest
from modelfleet.trust.errors import VerificationError
from modelfleet.trust.modelsig import SignedManifest, check_hashing, signed_manifest
from modelfleet.trust.policy import DIGEST_RE, Policy
from modelfleet.trust.provenance import check_attestations
from modelfleet.trust.signatures import (
    Signature,
    check_signature_type,
    parse_signatures,
    read_signature_file,
)
from modelfleet.trust.signer import Signer
from modelfleet.trust.verified import VerifiedArtifact, proof

log = logging.getLogger(__name__)
T = TypeVar("T")


def _guarded(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except VerificationError:
        raise
    except Exception as exc:  # fail closed, with the cause in one line
        log.debug("verification crashed", exc_info=True)
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise VerificationError("internal", f"unexpected {type(exc).__name__}: {detail}") from exc


def _check_denied(policy: Policy, digest: str, what: str) -> None:
    if digest in policy.denied_digests:
        raise VerificationError("denylist", f"{what} {digest} is revoked by policy {policy.name!r}")


def check_request(policy: Policy, expected_digest: str, *, signature_named: bool) -> None:
    """The checks that need no bytes: the digest's form, the denylist, that a signature is named.

    :func:`verify_artifact` runs them first; the operator runs them before fetching anything.
    """
    if not DIGEST_RE.match(expected_digest):
        raise VerificationError(
            "digest", f"expected digest {expected_digest!r} is not sha256:<64 hex>"
        )
    _check_denied(policy, expected_digest, "artifact")
    if not signature_named:
        read_signature_file(None)  # the one "unsigned models are never accepted" refusal


def _plain_bundle(
    policy: Policy,
    signatures: Sequence[Signature],
    digest: str,
    *,
    attestations: Sequence[Path],
    now: datetime,
    accept_statements: bool,
) -> VerifiedArtifact:
    """The whole check of plain Sigstore bundles over the artifact bytes ``digest``."""
    if not accept_statements:
        for signature in signatures:
            check_signature_type(signature)
    sha256 = bytes.fromhex(digest.removeprefix("sha256:"))
    endorsements = endorse(policy, signatures, now=now, artifact_sha256=sha256)
    signers = tuple(e.signer for e in endorsements)
    return _finish(policy, digest, None, signers, attestations, now, None)


def _model_signed(
    policy: Policy,
    signatures: Sequence[Signature],
    now: datetime,
    revoked_models: Mapping[str, str],
) -> SignedManifest:
    """Model-signing signatures, their pinned hashing, and the denylist on the manifest digest."""
    signed = signed_manifest(endorse(policy, signatures, now=now))
    check_hashing(signed, policy.hashing)
    _check_denied(policy, signed.root_digest, "model")
    for artifact, model in revoked_models.items():
        if model == signed.root_digest and artifact in policy.denied_digests:
            raise VerificationError(
                "denylist",
                f"model {model} is revoked by policy {policy.name!r}: it is the model of the "
                f"revoked artifact {artifact}, repacked",
            )
    return signed


def _finish(  # noqa: PLR0917 - every part of the proof
    policy: Policy,
    digest: str,
    signed: SignedManifest | None,
    signers: tuple[Signer, ...],
    attestations: Sequence[Path],
    now: datetime,
    model_path: Path | None,
) -> VerifiedArtifact:
    """Once the signers and files passed: the required attestations, then the proof."""
    model_digest = signed.root_digest if signed is not None else None
    subjects = frozenset(d for d in (digest, model_digest) if d)
    provenance = check_attestations(policy, attestations, subjects, now)
    return proof(policy.name, digest, model_digest, signers, provenance, now, model_path)


def verify_artifact(
    policy: Policy,
    artifact: Path,
    *,
    expected_digest: str,
    signature: Path | None,
    attestations: Sequence[Path] = (),
    ignore_paths: Sequence[str] = (),
    now: datetime | None = None,
    unpack_to: Path | None = None,
    limits: ArchiveLimits | None = None,
    revoked_models: Mapping[str, str] | None = None,
) -> VerifiedArtifact:
    """Verifies the artifact at ``artifact`` (a model file or a tar archive of the model folder).

    ``expected_digest`` is ``"sha256:<hex>"`` of the artifact bytes (from the ModelRelease). An
    archive is checked member by member against the signed manifest without writing anything;
    with ``unpack_to`` (empty or missing) only what that check verified is then unpacked there,
    kept on success and removed on failure. ``revoked_models``: artifact digest → the model digest
    it verified as, for what the caller knows (module docstring, *Revocation*). Raises
    :class:`VerificationError`.
    """
    return _guarded(
        lambda: _verify_artifact(
            policy,
            artifact,
            expected_digest,
            signature,
            attestations,
            ignore_paths,
            now,
            unpack_to,
            limits,
            revoked_models or {},
        )
    )


def _verify_artifact(  # noqa: PLR0917 - mirrors verify_artifact's parameters
    policy: Policy,
    artifact: Path,
    expected_digest: str,
    signature: Path | None,
    attestations: Sequence[Path],
    ignore_paths: Sequence[str],
    now: datetime | None,
    unpack_to: Path | None,
    limits: ArchiveLimits | None,
    revoked_models: Mapping[str, str],
) -> VerifiedArtifact:
    now = now or datetime.now(UTC)
    check_request(policy, expected_digest, signature_named=signature is not None)
    raw = read_signature_file(signature)
    if not artifact.is_file():
        raise VerificationError("input", f"artifact {artifact} is not a file")
    digest = digest_file(artifact)
    if digest != expected_digest:
        raise VerificationError(
            "digest",
            f"digest mismatch: the artifact is not the {expected_digest} the release names",
        )
    signatures = parse_signatures(raw)
    if signatures[0].format == "bundle":
        return _plain_bundle(
            policy, signatures, digest, attestations=attestations, now=now, accept_statements=False
        )
    signed = _model_signed(policy, signatures, now, revoked_models)
    kept = check_artifact(
        artifact,
        signed,
        policy,
        digest=digest,
        ignore=ignore_paths,
        unpack_to=unpack_to,
        limits=limits,
    )
    return _finish(policy, digest, signed, signed.signers, attestations, now, kept)


def verify_model(
    policy: Policy,
    model: Path,
    *,
    signature: Path | None,
    attestations: Sequence[Path] = (),
    ignore_paths: Sequence[str] = (),
    now: datetime | None = None,
    accept_statements: bool = False,
) -> VerifiedArtifact:
    """Verifies a model on disk (a folder, or one file) or a single artifact with a bundle.

    A model-signing signature is checked over the model's files; a plain Sigstore bundle over the
    bytes of ``model`` (which must then be a file). ``digest`` of the result is the artifact's
    SHA-256 for a file and the model-signing root digest for a folder. ``accept_statements``
    (``modelfleet verify-bundle`` only, which checks bundles as the Sigstore conformance suite
    defines them) also accepts a signed in-toto statement naming the file as its subject; a
    model's signature never is one.
    """
    return _guarded(
        lambda: _verify_model(
            policy, model, signature, attestations, ignore_paths, now, accept_statements
        )
    )


def _verify_model(  # noqa: PLR0917 - mirrors verify_model's parameters
    policy: Policy,
    model: Path,
    signature: Path | None,
    attestations: Sequence[Path],
    ignore_paths: Sequence[str],
    now: datetime | None,
    accept_statements: bool,
) -> VerifiedArtifact:
    now = now or datetime.now(UTC)
    raw = read_signature_file(signature)
    if not model.exists():
        raise VerificationError("input", f"model {model} does not exist")
    signatures = parse_signatures(raw)
    digest = ""
    if model.is_file() and not model.is_symlink():
        digest = digest_file(model)
        _check_denied(policy, digest, "artifact")
        if signatures[0].format == "bundle":
            return _plain_bundle(
                policy,
                signatures,
                digest,
                attestations=attestations,
                now=now,
                accept_statements=accept_statements,
            )
    elif signatures[0].format == "bundle":
        raise VerificationError(
            "bundle", "a folder needs a model-signing signature, not a plain bundle"
        )
    signed = _model_signed(policy, signatures, now, {})
    actual = check_model(
        model, signed, policy, digest=digest, signature=signature, ignore=ignore_paths
    )
    digest = digest or root_digest(actual)
    return _finish(policy, digest, signed, signed.signers, attestations, now, None)

"""The entry points: verify an artifact (operator, agent) or a model on disk (CLI) against a policy.

Order of checks (cheapest and most decisive first): policy → denylist (expected digest) → digest
of the artifact bytes, streamed → signature type → signature and signer → pinned hashing →
denylist (model digest) → unpacking (archives, safely) and the model's files against the signed
manifest → required attestations.

**What counts as a signature.** A model-signing signature (a DSSE in-toto statement whose
predicate type is model_signing's), or a Sigstore *message signature* over the artifact bytes.
Any other signed statement, for example SLSA provenance naming the artifact, is an attestation:
it is checked under ``spec.artifact.attestations`` against the policy's attestation rules, and
refused as the release signature (check ``signature-type``), whoever signed it.

**Revocation.** ``deniedDigests`` is matched against the artifact's digest and against the signed
model's manifest digest (model_signing's in-toto subject digest, ``status.verification
.modelDigest``). Repacking a revoked model's files gives new artifact bytes but the same manifest
digest. A caller that knows which model an artifact verified as (the operator, from status) passes
``revoked_models={artifact digest: model digest}``: an artifact digest on the denylist then revokes
that model too. Any exception that is not a :class:`VerificationError` is turned into one (check
``internal``): nothing but a fully successful run yields a :class:`VerifiedArtifact`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from modelfleet.trust.archive import ArchiveLimits, extract_archive, is_archive, scan_archive
from modelfleet.trust.bundle import (
    IN_TOTO_PAYLOAD_TYPE,
    dsse_envelope,
    parse_json,
    verify_key_bundle,
    verify_keyless_bundle,
)
from modelfleet.trust.digest import compute_manifest, digest_file, root_digest
from modelfleet.trust.errors import VerificationError
from modelfleet.trust.material import load_public_key
from modelfleet.trust.modelsig import (
    MODEL_SIGNING_PREDICATES,
    SignedManifest,
    check_hashing,
    is_model_signing,
    verify_model_signature,
)
from modelfleet.trust.policy import DIGEST_RE, Authority, Policy
from modelfleet.trust.provenance import Provenance, check_attestations
from modelfleet.trust.verified import _TOKEN, VerifiedArtifact

log = logging.getLogger(__name__)
MAX_SIGNATURE_BYTES = 16 * 1024 * 1024
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


def _read_signature(path: Path | None) -> bytes:
    if path is None:
        raise VerificationError("input", "no signature given: unsigned models are never accepted")
    try:
        if path.stat().st_size > MAX_SIGNATURE_BYTES:
            raise VerificationError("bundle", f"signature {path.name} is larger than 16 MiB")
        return path.read_bytes()
    except OSError as exc:
        raise VerificationError("input", f"cannot read signature {path}: {exc.strerror}") from None


def _check_denied(policy: Policy, digest: str, what: str) -> None:
    if digest in policy.denied_digests:
        raise VerificationError("denylist", f"{what} {digest} is revoked by policy {policy.name!r}")


def compare_manifests(expected: dict[str, str], actual: dict[str, str]) -> None:
    """Rejects any change, addition, removal or rename, naming the first files concerned."""
    if expected == actual:
        return
    added = sorted(set(actual) - set(expected))
    removed = sorted(set(expected) - set(actual))
    changed = sorted(k for k in set(actual) & set(expected) if actual[k] != expected[k])
    by_digest = {expected[k]: k for k in removed}
    renamed = [(by_digest[actual[k]], k) for k in added if actual[k] in by_digest]
    if renamed:
        old, new = renamed[0]
        raise VerificationError("integrity", f"file {old!r} was renamed to {new!r}")
    if changed:
        raise VerificationError(
            "integrity", f"file {changed[0]!r} was modified ({len(changed)} changed)"
        )
    if added:
        raise VerificationError(
            "integrity", f"file {added[0]!r} is not covered by the signature ({len(added)} added)"
        )
    raise VerificationError(
        "integrity", f"signed file {removed[0]!r} is missing ({len(removed)} removed)"
    )


def _ignore_list(
    policy: Policy, model: Path, signature: Path | None, extra: Sequence[str]
) -> tuple[str, ...]:
    ignore = list(policy.hashing.ignore_paths) + [str(p) for p in extra]
    # a signature kept inside the model folder is not part of the model
    if (
        signature is not None
        and model.is_dir()
        and signature.resolve().is_relative_to(model.resolve())
    ):
        ignore.append(signature.resolve().relative_to(model.resolve()).as_posix())
    return tuple(ignore)


@dataclass(frozen=True)
class _Signer:
    """Who signed, as a verified signature proved it."""

    authority: Authority
    signer: str
    issuer: str | None = None
    tlog_index: int | None = None
    integrated_time: datetime | None = None


def _check_signature_type(doc: dict[str, Any]) -> None:
    """A plain bundle must be a message signature: a signed statement is an attestation."""
    envelope = dsse_envelope(doc)
    if envelope is None:
        return
    ptype, payload, _sigs = envelope
    if ptype != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(
            "signature-type",
            f"the signature is a DSSE envelope of payload type {ptype!r}, not a model signature",
        )
    try:
        statement = json.loads(payload)
        predicate = statement.get("predicateType") if isinstance(statement, dict) else None
    except ValueError:
        predicate = None
    raise VerificationError(
        "signature-type",
        f"the signature is an in-toto statement of predicate type {predicate!r}, not a model "
        f"signature (expected {MODEL_SIGNING_PREDICATES[0]!r} or a message signature over the "
        "artifact); provenance belongs in spec.artifact.attestations",
    )


def _bundle_signers(raw: bytes, policy: Policy, artifact_sha256: bytes) -> _Signer:
    """A plain Sigstore bundle over the artifact: message signature or DSSE naming its digest."""
    doc = parse_json(raw)
    material = doc.get("verificationMaterial") or {}
    failures: list[VerificationError] = []
    for auth in policy.authorities:
        try:
            if auth.key is not None and "publicKey" in material:
                key = load_public_key(auth.key.pem, f"authority {auth.name!r} key")
                ev = verify_key_bundle(
                    raw,
                    key=key,
                    artifact_sha256=artifact_sha256,
                    trusted_root_json=auth.key.trusted_root_json,
                    require_tlog=auth.key.require_transparency_log,
                )
            elif auth.keyless is not None and "publicKey" not in material:
                ev = verify_keyless_bundle(
                    raw,
                    trusted_root_json=auth.keyless.trusted_root_json,
                    identities=auth.keyless.identities,
                    authority=auth.name,
                    artifact_sha256=artifact_sha256,
                )
            else:
                continue
            if ev.payload is not None:
                statement: Any = json.loads(ev.payload)
                subjects = [
                    s.get("digest", {}).get("sha256") for s in statement.get("subject") or []
                ]
                if artifact_sha256.hex() not in subjects:
                    raise VerificationError(
                        "integrity", "the signed statement's subject is not this artifact"
                    )
            return _Signer(auth, ev.signer, ev.issuer, ev.tlog_index, ev.integrated_time)
        except VerificationError as exc:
            failures.append(exc)
    if not failures:
        raise VerificationError(
            "authority", "no authority of the policy can verify this kind of bundle"
        )
    best = max(failures, key=lambda e: e.stage)
    if len(failures) > 1:
        raise VerificationError(best.check, "; ".join(f.reason for f in failures))
    raise best


def _result(
    policy: Policy,
    *,
    digest: str,
    signed: SignedManifest | None,
    signer: _Signer,
    provenance: tuple[Provenance, ...],
    now: datetime,
    model_path: Path | None,
) -> VerifiedArtifact:
    return VerifiedArtifact(
        digest=digest,
        model_digest=signed.root_digest if signed else None,
        policy=policy.name,
        authority=signer.authority.name,
        authority_kind=signer.authority.kind,
        signature_format="model-signing" if signed else "sigstore-bundle",
        signer=signer.signer,
        issuer=signer.issuer,
        tlog_index=signer.tlog_index,
        integrated_time=signer.integrated_time,
        provenance=provenance,
        verified_at=now,
        model_path=model_path,
        _token=_TOKEN,
    )


def _plain_bundle(
    policy: Policy,
    raw: bytes,
    doc: dict[str, Any],
    digest: str,
    *,
    attestations: Sequence[Path],
    now: datetime,
    accept_statements: bool,
) -> VerifiedArtifact:
    """The whole check of a plain Sigstore bundle over the artifact bytes ``digest``."""
    if not accept_statements:
        _check_signature_type(doc)
    signer = _bundle_signers(raw, policy, bytes.fromhex(digest.removeprefix("sha256:")))
    provenance = check_attestations(policy, attestations, frozenset({digest}), now)
    return _result(
        policy,
        digest=digest,
        signed=None,
        signer=signer,
        provenance=provenance,
        now=now,
        model_path=None,
    )


def _model_signed(
    policy: Policy, raw: bytes, now: datetime, revoked_models: Mapping[str, str]
) -> SignedManifest:
    """A model-signing signature, its pinned hashing, and the denylist on its manifest digest."""
    signed = verify_model_signature(raw, policy, now=now)
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


def _model_result(
    policy: Policy,
    *,
    digest: str,
    signed: SignedManifest,
    attestations: Sequence[Path],
    now: datetime,
    model_path: Path | None,
) -> VerifiedArtifact:
    """A model-signed result, once the files matched the manifest: attestations, then proof."""
    provenance = check_attestations(
        policy, attestations, frozenset({digest, signed.root_digest}), now
    )
    signer = _Signer(
        signed.authority, signed.signer, signed.issuer, signed.tlog_index, signed.integrated_time
    )
    return _result(
        policy,
        digest=digest,
        signed=signed,
        signer=signer,
        provenance=provenance,
        now=now,
        model_path=model_path,
    )


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
    if not DIGEST_RE.match(expected_digest):
        raise VerificationError(
            "digest", f"expected digest {expected_digest!r} is not sha256:<64 hex>"
        )
    _check_denied(policy, expected_digest, "artifact")
    raw = _read_signature(signature)
    if not artifact.is_file():
        raise VerificationError("input", f"artifact {artifact} is not a file")
    digest = digest_file(artifact)
    if digest != expected_digest:
        raise VerificationError(
            "digest",
            f"digest mismatch: the artifact is not the {expected_digest} the release names",
        )
    doc = parse_json(raw, "signature")
    if not is_model_signing(doc):
        return _plain_bundle(
            policy, raw, doc, digest, attestations=attestations, now=now, accept_statements=False
        )
    signed = _model_signed(policy, raw, now, revoked_models)
    ignore = tuple(policy.hashing.ignore_paths) + tuple(ignore_paths)
    kept: Path | None = None
    if is_archive(artifact):
        # the signed manifest drives unpacking: read once, writing nothing, then (for a slot)
        # again, writing only what that first read verified; see trust/archive.py
        contents = scan_archive(
            artifact, policy.hashing, signed=signed.items, ignore=ignore, limits=limits
        )
        compare_manifests(signed.items, contents.items)
        if unpack_to is not None:
            try:
                extract_archive(
                    artifact,
                    unpack_to,
                    policy.hashing,
                    expected=contents,
                    ignore=ignore,
                    limits=limits,
                )
            except BaseException:
                shutil.rmtree(unpack_to, ignore_errors=True)
                raise
        kept = unpack_to
    else:
        known = None
        if policy.hashing.method == "sha256" and policy.hashing.serialization == "files":
            known = {".": digest.removeprefix("sha256:")}  # the file's digest is its manifest entry
        compare_manifests(
            signed.items, compute_manifest(artifact, policy.hashing, ignore, known=known)
        )
    return _model_result(
        policy,
        digest=digest,
        signed=signed,
        attestations=attestations,
        now=now,
        model_path=kept,
    )


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
    raw = _read_signature(signature)
    if not model.exists():
        raise VerificationError("input", f"model {model} does not exist")
    doc = parse_json(raw, "signature")
    if model.is_file() and not model.is_symlink():
        digest = digest_file(model)
        _check_denied(policy, digest, "artifact")
        if not is_model_signing(doc):
            return _plain_bundle(
                policy,
                raw,
                doc,
                digest,
                attestations=attestations,
                now=now,
                accept_statements=accept_statements,
            )
    elif not is_model_signing(doc):
        raise VerificationError(
            "bundle", "a folder needs a model-signing signature, not a plain bundle"
        )
    else:
        digest = ""
    signed = _model_signed(policy, raw, now, {})
    ignore = _ignore_list(policy, model, signature, ignore_paths)
    known = None
    if digest and policy.hashing.method == "sha256" and policy.hashing.serialization == "files":
        known = {".": digest.removeprefix("sha256:")}
    actual = compute_manifest(model, policy.hashing, ignore, known=known)
    compare_manifests(signed.items, actual)
    digest = digest or root_digest(actual)
    return _model_result(
        policy, digest=digest, signed=signed, attestations=attestations, now=now, model_path=None
    )


def sha256_bytes(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"

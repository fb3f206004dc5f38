"""A model's files against its signed manifest: an archive, one model file, or a folder on disk.

An archive is checked member by member against the signed manifest without writing anything
(:func:`~modelfleet.trust.archive.scan_archive`); given ``unpack_to`` (empty or missing), only
what that check verified is then unpacked there, kept on success and removed on failure. Any
change, addition, removal or rename is check ``integrity``, naming the first files concerned.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from modelfleet.trust.archive import ArchiveLimits, extract_archive, is_archive, scan_archive
from modelfleet.trust.digest import compute_manifest
from modelfleet.trust.errors import VerificationError
from modelfleet.trust.modelsig import SignedManifest
from modelfleet.trust.policy import Hashing, Policy


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


def _known(hashing: Hashing, file_digest: str) -> dict[str, str] | None:
    """A single file's digest is its manifest entry, when hashing is whole-file SHA-256."""
    if file_digest and hashing.method == "sha256" and hashing.serialization == "files":
        return {".": file_digest.removeprefix("sha256:")}
    return None


def check_artifact(
    artifact: Path,
    signed: SignedManifest,
    policy: Policy,
    *,
    digest: str,
    ignore: Sequence[str],
    unpack_to: Path | None,
    limits: ArchiveLimits | None,
) -> Path | None:
    """An artifact's files against the manifest; where an archive was unpacked, if asked."""
    ignore = tuple(policy.hashing.ignore_paths) + tuple(ignore)
    if not is_archive(artifact):
        actual = compute_manifest(
            artifact, policy.hashing, ignore, known=_known(policy.hashing, digest)
        )
        compare_manifests(signed.items, actual)
        return None
    # the signed manifest drives unpacking: read once, writing nothing, then (for a slot)
    # again, writing only what that first read verified; see trust/archive.py
    contents = scan_archive(
        artifact, policy.hashing, signed=signed.items, ignore=ignore, limits=limits
    )
    compare_manifests(signed.items, contents.items)
    if unpack_to is not None:
        try:
            extract_archive(
                artifact, unpack_to, policy.hashing, expected=contents, ignore=ignore, limits=limits
            )
        except BaseException:
            shutil.rmtree(unpack_to, ignore_errors=True)
            raise
    return unpack_to


def check_model(
    model: Path,
    signed: SignedManifest,
    policy: Policy,
    *,
    digest: str,
    signature: Path | None,
    ignore: Sequence[str],
) -> dict[str, str]:
    """A model on disk (folder or file) against the manifest; its manifest."""
    skip = list(policy.hashing.ignore_paths) + [str(p) for p in ignore]
    # a signature kept inside the model folder is not part of the model
    if (
        signature is not None
        and model.is_dir()
        and signature.resolve().is_relative_to(model.resolve())
    ):
        skip.append(signature.resolve().relative_to(model.resolve()).as_posix())
    actual = compute_manifest(
        model, policy.hashing, tuple(skip), known=_known(policy.hashing, digest)
    )
    compare_manifests(signed.items, actual)
    return actual

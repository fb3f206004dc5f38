"""Every tampering of a key-signed model or artifact is rejected, each with its own reason.

The tamperings are one table (:data:`MUTATIONS`): each row signs a model for real, tampers with
it, and names the check that must refuse it and a phrase of the reason."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from modelfleet.trust import (
    Policy,
    load_policy,
    parse_policy,
    verify_artifact,
    verify_model,
)
from tests.trustkit import SignedModel, make_key, make_signed_model
from tests.trustkit.models import DEFAULT_FILES, public_pem
from tests.trustkit.rejections import reject


@dataclass(frozen=True)
class Attempt:
    """One verification of a tampered model (it must raise :class:`VerificationError`), and the
    digest of the artifact it names (reasons may quote it)."""

    verify: Callable[[], Any]
    digest: str


def verify_signed(s: SignedModel, *, policy: Policy | None = None, **kw: Any) -> Attempt:
    """``verify_artifact`` of ``s`` with its own policy, digest and signature unless ``kw`` says
    otherwise (``artifact=``, ``expected_digest=``, ``signature=``, ``limits=``)."""
    args: dict[str, Any] = {
        "artifact": s.artifact, "expected_digest": s.digest, "signature": s.signature, **kw,
    }  # fmt: skip
    artifact = args.pop("artifact")
    return Attempt(
        lambda: verify_artifact(policy or load_policy(s.policy_path), artifact, **args), s.digest
    )


def verify_folder(s: SignedModel) -> Attempt:
    """``verify_model`` of the unpacked model folder of ``s``."""
    return Attempt(
        lambda: verify_model(load_policy(s.policy_path), s.model_dir, signature=s.signature),
        s.digest,
    )


def key_policy(s: SignedModel, **spec: Any) -> Policy:
    """A policy trusting the key of ``s`` only, with ``spec`` added."""
    return parse_policy({"authorities": [{"name": "k", "key": {"data": s.public_key_pem}}], **spec})


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        tar.addfile(member, io.BytesIO(data) if data else None)
    return path


# --------------------------------------------------------------------------- the tamperings


def flip_one_byte(victim: str) -> Callable[[Path], Attempt]:
    def tamper(tmp: Path) -> Attempt:
        s = make_signed_model(tmp, archive=True)
        path = s.model_dir / victim
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x80
        path.write_bytes(bytes(data))
        return verify_folder(s)

    return tamper


def add_file(tmp: Path) -> Attempt:
    s = make_signed_model(tmp, archive=True)
    (s.model_dir / "backdoor.py").write_text("import os\n")
    return verify_folder(s)


def remove_file(tmp: Path) -> Attempt:
    s = make_signed_model(tmp, archive=True)
    (s.model_dir / "config.json").unlink()
    return verify_folder(s)


def rename_file(tmp: Path) -> Attempt:
    s = make_signed_model(tmp, archive=True)
    (s.model_dir / "config.json").rename(s.model_dir / "config2.json")
    return verify_folder(s)


def file_to_symlink(tmp: Path) -> Attempt:
    s = make_signed_model(tmp, archive=True)
    target = s.model_dir / "config.json"
    shutil.copy(target, s.model_dir.parent / "elsewhere.json")
    target.unlink()
    os.symlink(s.model_dir.parent / "elsewhere.json", target)
    return verify_folder(s)


def swap_signature_between_models(tmp: Path) -> Attempt:
    a = make_signed_model(tmp, name="a", archive=True)
    b = make_signed_model(tmp, name="b", archive=True, key=a.key, files={"weights.bin": b"other"})
    return verify_signed(a, signature=b.signature)


def swap_signature_of_a_single_file(tmp: Path) -> Attempt:
    a = make_signed_model(tmp, name="a")
    b = make_signed_model(tmp, name="b", key=a.key, content=b"another model")
    return verify_signed(a, signature=b.signature)


def wrong_digest(tmp: Path) -> Attempt:
    s = make_signed_model(tmp, archive=True)
    return verify_signed(s, expected_digest="sha256:" + "0" * 64)


def tamper_archive(tmp: Path) -> Attempt:
    s = make_signed_model(tmp, archive=True)
    data = bytearray(s.artifact.read_bytes())
    data[600] ^= 1
    s.artifact.write_bytes(bytes(data))
    return verify_signed(s)


def revoke_artifact_digest(tmp: Path) -> Attempt:
    s = make_signed_model(tmp)
    return verify_signed(s, policy=key_policy(s, deniedDigests=[s.digest]))


def revoke_model_digest(tmp: Path) -> Attempt:
    s = make_signed_model(tmp, archive=True)
    good = verify_signed(s).verify()
    assert good.model_digest
    return verify_signed(s, policy=key_policy(s, deniedDigests=[good.model_digest]))


def sign_with_an_unknown_key(tmp: Path) -> Attempt:
    s = make_signed_model(tmp)
    other: ec.EllipticCurvePrivateKey = make_key()
    policy = parse_policy({"authorities": [{"name": "other", "key": {"data": public_pem(other)}}]})
    return verify_signed(s, policy=policy)


def drop_signature(tmp: Path) -> Attempt:
    return verify_signed(make_signed_model(tmp), signature=None)


def garble_signature(tmp: Path) -> Attempt:
    s = make_signed_model(tmp)
    s.signature.write_text("{not json")
    return verify_signed(s)


def truncate_bundle(tmp: Path) -> Attempt:
    s = make_signed_model(tmp)
    s.signature.write_text(
        '{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "dsseEnvelope": {}}'
    )
    return verify_signed(s)


def unsafe_member(name: str, kind: bytes) -> Callable[[Path], Attempt]:
    def tamper(tmp: Path) -> Attempt:
        from modelfleet.trust import digest_file

        s = make_signed_model(tmp, archive=True)
        info = tarfile.TarInfo(name)
        info.type = kind
        data = b"x" if kind == tarfile.REGTYPE else b""
        info.size = len(data)
        info.linkname = "/etc/shadow" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
        evil = _tar_with(tmp, info, data)
        return verify_signed(s, artifact=evil, expected_digest=digest_file(evil))

    return tamper


def exceed_the_archive_cap(tmp: Path) -> Attempt:
    from modelfleet.trust import ArchiveLimits

    return verify_signed(make_signed_model(tmp, archive=True), limits=ArchiveLimits(max_bytes=100))


def symlink_in_a_strict_policy(tmp: Path) -> Attempt:
    from modelfleet.trust import Hashing, pack_model, sign_model

    s = make_signed_model(tmp, archive=True)
    os.symlink("config.json", s.model_dir / "config-link.json")
    sig = tmp / "links.sig"
    sign_model(s.model_dir, sig, private_key=s.key, hashing=Hashing(allow_symlinks=True))
    tar = tmp / "links.tar"
    digest = pack_model(s.model_dir, tar)
    permissive = key_policy(s, hashing={"allowSymlinks": True})
    assert verify_artifact(permissive, tar, expected_digest=digest, signature=sig).model_digest
    return verify_signed(
        s, policy=key_policy(s), artifact=tar, expected_digest=digest, signature=sig
    )


def symlink_escaping_the_model(tmp: Path) -> Attempt:
    from modelfleet.trust import Hashing, digest_file, sign_model

    s = make_signed_model(tmp, archive=True)
    sig = tmp / "s.sig"
    sign_model(s.model_dir, sig, private_key=s.key, hashing=Hashing(allow_symlinks=True))
    info = tarfile.TarInfo("config.json")
    info.type = tarfile.SYMTYPE
    info.linkname = "../../etc/passwd"
    evil = _tar_with(tmp, info)
    permissive = key_policy(s, hashing={"allowSymlinks": True})
    return verify_signed(
        s, policy=permissive, artifact=evil, expected_digest=digest_file(evil), signature=sig
    )


@dataclass(frozen=True)
class Mutation:
    """One tampering and how it must be refused: ``check`` (or one of several), and a phrase of
    the reason."""

    name: str
    tamper: Callable[[Path], Attempt]
    check: str | tuple[str, ...]
    reason: str = ""
    """A phrase of the reason; ``{digest}`` stands for the digest of the tampered artifact."""


MUTATIONS = [
    *(Mutation(f"flip-{victim}", flip_one_byte(victim), "integrity", f"'{victim}' was modified")
      for victim in sorted(DEFAULT_FILES)),
    Mutation("added-file", add_file, "integrity", "'backdoor.py' is not covered"),
    Mutation("removed-file", remove_file, "integrity", "'config.json' is missing"),
    Mutation("renamed-file", rename_file, "integrity", "renamed to 'config2.json'"),
    Mutation("file-turned-symlink", file_to_symlink, "integrity", "symbolic link"),
    Mutation("signature-swapped-between-models", swap_signature_between_models, "integrity"),
    Mutation("signature-of-a-single-file-swapped", swap_signature_of_a_single_file, "integrity",
             "'.' was modified"),
    Mutation("wrong-digest-before-anything-else", wrong_digest, "digest"),
    Mutation("tampered-archive-fails-on-digest", tamper_archive, "digest"),
    Mutation("revoked-artifact-digest", revoke_artifact_digest, "denylist", "{digest}"),
    Mutation("revoked-model-digest-whatever-the-packaging", revoke_model_digest, "denylist",
             "model"),
    Mutation("signed-by-an-unknown-key", sign_with_an_unknown_key, "signature"),
    Mutation("missing-signature", drop_signature, "input", "unsigned"),
    Mutation("unparsable-signature", garble_signature, "bundle"),
    Mutation("truncated-bundle", truncate_bundle, ("bundle", "integrity", "signature")),
    Mutation("member-escaping-upwards", unsafe_member("../escape.bin", tarfile.REGTYPE),
             "archive", "escape"),
    Mutation("member-absolute", unsafe_member("/etc/passwd", tarfile.REGTYPE), "archive",
             "escape"),
    Mutation("member-symlink", unsafe_member("link", tarfile.SYMTYPE), "archive",
             "symbolic link"),
    Mutation("member-hard-link", unsafe_member("hard", tarfile.LNKTYPE), "archive",
             "not a regular file"),
    Mutation("member-device", unsafe_member("dev", tarfile.CHRTYPE), "archive",
             "not a regular file"),
    Mutation("archive-larger-than-the-cap", exceed_the_archive_cap, "archive",
             "more than 100 bytes"),
    Mutation("symlink-not-allowed-by-the-policy", symlink_in_a_strict_policy, "archive",
             "symbolic link"),
    Mutation("symlink-escaping-the-model-even-when-allowed", symlink_escaping_the_model,
             "archive", "outside"),
]  # fmt: skip


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_tampering_is_rejected_naming_the_check(mutation: Mutation, tmp_path: Path) -> None:
    attempt = mutation.tamper(tmp_path)
    err = reject(attempt.verify)
    if isinstance(mutation.check, tuple):
        assert err.check in mutation.check
    else:
        assert err.check == mutation.check
    assert mutation.reason.format(digest=attempt.digest) in err.reason


def test_a_digest_mismatch_does_not_reveal_the_digest_of_what_was_read(tmp_path: Path) -> None:
    # The reason reaches ModelRelease and EdgeGateway status: whoever named the URI must not learn
    # the digest of the bytes behind it (a probe of a file or an internal URL).
    s = make_signed_model(tmp_path, archive=True)
    err = reject(verify_signed(s, expected_digest="sha256:" + "0" * 64).verify)
    assert err.reason.startswith("digest mismatch")
    assert s.digest.removeprefix("sha256:") not in str(err)

"""Every tampering of a key-signed model or artifact is rejected, each with its own reason."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from modelfleet.trust import (
    VerificationError,
    load_policy,
    parse_policy,
    verify_artifact,
    verify_model,
)
from tests.trustkit import make_signed_model
from tests.trustkit.models import DEFAULT_FILES, public_pem


def reject(fn: object, *args: object, **kwargs: object) -> VerificationError:
    with pytest.raises(VerificationError) as err:
        fn(*args, **kwargs)  # type: ignore[operator]
    assert "\n" not in str(err.value)
    return err.value


@pytest.fixture
def folder_model(tmp_path: Path):  # type: ignore[no-untyped-def]
    signed = make_signed_model(tmp_path, archive=True)
    return signed, load_policy(signed.policy_path)


@pytest.mark.parametrize("victim", sorted(DEFAULT_FILES))
def test_one_byte_flipped_in_each_file_is_rejected(folder_model, victim: str) -> None:  # type: ignore[no-untyped-def]
    signed, policy = folder_model
    path = signed.model_dir / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x80
    path.write_bytes(bytes(data))
    err = reject(verify_model, policy, signed.model_dir, signature=signed.signature)
    assert err.check == "integrity" and f"'{victim}' was modified" in err.reason


def test_added_file_is_rejected(folder_model) -> None:  # type: ignore[no-untyped-def]
    signed, policy = folder_model
    (signed.model_dir / "backdoor.py").write_text("import os\n")
    err = reject(verify_model, policy, signed.model_dir, signature=signed.signature)
    assert err.check == "integrity" and "'backdoor.py' is not covered" in err.reason


def test_removed_file_is_rejected(folder_model) -> None:  # type: ignore[no-untyped-def]
    signed, policy = folder_model
    (signed.model_dir / "config.json").unlink()
    err = reject(verify_model, policy, signed.model_dir, signature=signed.signature)
    assert err.check == "integrity" and "'config.json' is missing" in err.reason


def test_renamed_file_is_rejected(folder_model) -> None:  # type: ignore[no-untyped-def]
    signed, policy = folder_model
    (signed.model_dir / "config.json").rename(signed.model_dir / "config2.json")
    err = reject(verify_model, policy, signed.model_dir, signature=signed.signature)
    assert err.check == "integrity" and "renamed to 'config2.json'" in err.reason


def test_file_turned_into_symlink_is_rejected(folder_model) -> None:  # type: ignore[no-untyped-def]
    signed, policy = folder_model
    target = signed.model_dir / "config.json"
    shutil.copy(target, signed.model_dir.parent / "elsewhere.json")
    target.unlink()
    os.symlink(signed.model_dir.parent / "elsewhere.json", target)
    err = reject(verify_model, policy, signed.model_dir, signature=signed.signature)
    assert err.check == "integrity" and "symbolic link" in err.reason


def test_signature_swapped_between_models_is_rejected(tmp_path: Path) -> None:
    a = make_signed_model(tmp_path, name="a", archive=True)
    b = make_signed_model(
        tmp_path, name="b", archive=True, key=a.key, files={"weights.bin": b"other"}
    )
    err = reject(
        verify_artifact,
        load_policy(a.policy_path),
        a.artifact,
        expected_digest=a.digest,
        signature=b.signature,
    )
    assert err.check == "integrity"


def test_signature_of_a_single_file_swapped_is_rejected(tmp_path: Path) -> None:
    a = make_signed_model(tmp_path, name="a")
    b = make_signed_model(tmp_path, name="b", key=a.key, content=b"another model")
    err = reject(
        verify_artifact,
        load_policy(a.policy_path),
        a.artifact,
        expected_digest=a.digest,
        signature=b.signature,
    )
    assert err.check == "integrity" and "'.' was modified" in err.reason


def test_artifact_with_wrong_digest_is_rejected_before_anything_else(tmp_path: Path) -> None:
    s = make_signed_model(tmp_path, archive=True)
    err = reject(
        verify_artifact,
        load_policy(s.policy_path),
        s.artifact,
        expected_digest="sha256:" + "0" * 64,
        signature=s.signature,
    )
    assert err.check == "digest"


def test_a_digest_mismatch_does_not_reveal_the_digest_of_what_was_read(tmp_path: Path) -> None:
    # The reason reaches ModelRelease and EdgeGateway status: whoever named the URI must not learn
    # the digest of the bytes behind it (a probe of a file or an internal URL).
    s = make_signed_model(tmp_path, archive=True)
    err = reject(
        verify_artifact,
        load_policy(s.policy_path),
        s.artifact,
        expected_digest="sha256:" + "0" * 64,
        signature=s.signature,
    )
    assert err.reason.startswith("digest mismatch")
    assert s.digest.removeprefix("sha256:") not in str(err)


def test_tampered_archive_fails_on_digest(tmp_path: Path) -> None:
    s = make_signed_model(tmp_path, archive=True)
    data = bytearray(s.artifact.read_bytes())
    data[600] ^= 1
    s.artifact.write_bytes(bytes(data))
    err = reject(
        verify_artifact,
        load_policy(s.policy_path),
        s.artifact,
        expected_digest=s.digest,
        signature=s.signature,
    )
    assert err.check == "digest"


def test_revoked_artifact_digest_is_rejected(tmp_path: Path) -> None:
    s = make_signed_model(tmp_path)
    policy = parse_policy(
        {
            "authorities": [{"name": "k", "key": {"data": s.public_key_pem}}],
            "deniedDigests": [s.digest],
        }
    )
    err = reject(
        verify_artifact, policy, s.artifact, expected_digest=s.digest, signature=s.signature
    )
    assert err.check == "denylist" and s.digest in err.reason


def test_revoked_model_digest_is_rejected_whatever_the_packaging(tmp_path: Path) -> None:
    s = make_signed_model(tmp_path, archive=True)
    good = verify_artifact(
        load_policy(s.policy_path), s.artifact, expected_digest=s.digest, signature=s.signature
    )
    assert good.model_digest
    policy = parse_policy(
        {
            "authorities": [{"name": "k", "key": {"data": s.public_key_pem}}],
            "deniedDigests": [good.model_digest],
        }
    )
    err = reject(
        verify_artifact, policy, s.artifact, expected_digest=s.digest, signature=s.signature
    )
    assert err.check == "denylist" and "model" in err.reason


def test_model_signed_by_an_unknown_key_is_rejected(tmp_path: Path, key) -> None:  # type: ignore[no-untyped-def]
    s = make_signed_model(tmp_path)
    policy = parse_policy({"authorities": [{"name": "other", "key": {"data": public_pem(key)}}]})
    err = reject(
        verify_artifact, policy, s.artifact, expected_digest=s.digest, signature=s.signature
    )
    assert err.check == "signature"


def test_missing_signature_is_rejected(tmp_path: Path) -> None:
    s = make_signed_model(tmp_path)
    err = reject(
        verify_artifact,
        load_policy(s.policy_path),
        s.artifact,
        expected_digest=s.digest,
        signature=None,
    )
    assert err.check == "input" and "unsigned" in err.reason


def test_unparsable_signature_is_rejected(tmp_path: Path) -> None:
    s = make_signed_model(tmp_path)
    s.signature.write_text("{not json")
    err = reject(
        verify_artifact,
        load_policy(s.policy_path),
        s.artifact,
        expected_digest=s.digest,
        signature=s.signature,
    )
    assert err.check == "bundle"


def test_truncated_bundle_is_rejected(tmp_path: Path) -> None:
    s = make_signed_model(tmp_path)
    s.signature.write_text(
        '{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "dsseEnvelope": {}}'
    )
    err = reject(
        verify_artifact,
        load_policy(s.policy_path),
        s.artifact,
        expected_digest=s.digest,
        signature=s.signature,
    )
    assert err.check in ("bundle", "integrity", "signature")


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        tar.addfile(member, io.BytesIO(data) if data else None)
    return path


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("../escape.bin", tarfile.REGTYPE, "escape"),
        ("/etc/passwd", tarfile.REGTYPE, "escape"),
        ("link", tarfile.SYMTYPE, "symbolic link"),
        ("hard", tarfile.LNKTYPE, "not a regular file"),
        ("dev", tarfile.CHRTYPE, "not a regular file"),
    ],
)
def test_unsafe_archive_member_is_rejected(
    tmp_path: Path, name: str, kind: bytes, reason: str
) -> None:
    from modelfleet.trust import digest_file

    s = make_signed_model(tmp_path, archive=True)
    info = tarfile.TarInfo(name)
    info.type = kind
    data = b"x" if kind == tarfile.REGTYPE else b""
    info.size = len(data)
    info.linkname = "/etc/shadow" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    evil = _tar_with(tmp_path, info, data)
    err = reject(
        verify_artifact,
        load_policy(s.policy_path),
        evil,
        expected_digest=digest_file(evil),
        signature=s.signature,
    )
    assert err.check == "archive" and reason in err.reason


def test_archive_larger_than_the_cap_is_rejected(tmp_path: Path) -> None:
    from modelfleet.trust import ArchiveLimits

    s = make_signed_model(tmp_path, archive=True)
    err = reject(
        verify_artifact,
        load_policy(s.policy_path),
        s.artifact,
        expected_digest=s.digest,
        signature=s.signature,
        limits=ArchiveLimits(max_bytes=100),
    )
    assert err.check == "archive" and "more than 100 bytes" in err.reason


def test_unpacked_model_is_kept_only_when_verified(tmp_path: Path) -> None:
    s = make_signed_model(tmp_path, archive=".tgz")
    dest = tmp_path / "slot"
    result = verify_artifact(
        load_policy(s.policy_path),
        s.artifact,
        expected_digest=s.digest,
        signature=s.signature,
        unpack_to=dest,
    )
    assert result.model_path == dest and (dest / "tokenizer" / "vocab.txt").exists()
    other = make_signed_model(tmp_path, name="other", archive=True, files={"x": b"y"})
    dest2 = tmp_path / "slot2"
    reject(
        verify_artifact,
        load_policy(s.policy_path),
        other.artifact,
        expected_digest=other.digest,
        signature=s.signature,
        unpack_to=dest2,
    )
    assert not dest2.exists()


def test_signature_inside_the_model_folder_is_ignored(tmp_path: Path) -> None:
    from modelfleet.trust import sign_model

    s = make_signed_model(tmp_path, archive=True)
    sig = s.model_dir / "model.sig"
    sign_model(s.model_dir, sig, private_key=s.key)
    assert (
        verify_model(load_policy(s.policy_path), s.model_dir, signature=sig).authority
        == "release-key"
    )


def test_policy_ignore_paths_leave_files_out(tmp_path: Path) -> None:
    s = make_signed_model(tmp_path, archive=True)
    (s.model_dir / "README.md").write_text("notes")
    policy = parse_policy(
        {
            "authorities": [{"name": "k", "key": {"data": s.public_key_pem}}],
            "hashing": {"ignorePaths": ["README.md"]},
        }
    )
    assert verify_model(policy, s.model_dir, signature=s.signature).signer.startswith("sha256:")


def test_shard_serialization_round_trips_and_matches_model_signing(tmp_path: Path) -> None:
    import model_signing

    from modelfleet.trust import Hashing

    hashing = Hashing(serialization="shards", shard_size=1000)
    files = {"big.bin": os.urandom(4500), "small.txt": b"abc", "empty": b""}
    s = make_signed_model(tmp_path, archive=True, files=files, hashing=hashing)
    policy = parse_policy(
        {
            "authorities": [{"name": "k", "key": {"data": s.public_key_pem}}],
            "hashing": {"serialization": "shards", "shardSize": 1000},
        }
    )
    assert verify_artifact(
        policy, s.artifact, expected_digest=s.digest, signature=s.signature
    ).model_digest
    pub = tmp_path / "k.pub"
    pub.write_text(s.public_key_pem)
    hcfg = model_signing.hashing.Config().set_ignored_paths(paths=[], ignore_git_paths=False)
    hcfg.use_shard_serialization(shard_size=1000)
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub).set_hashing_config(
        hcfg
    ).verify(s.model_dir, s.signature)


def test_unexpected_exception_is_a_rejection_not_a_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelfleet.trust.contents as verify_module

    s = make_signed_model(tmp_path)

    def boom(*args: object, **kwargs: object) -> dict[str, str]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(verify_module, "compute_manifest", boom)
    err = reject(
        verify_artifact,
        load_policy(s.policy_path),
        s.artifact,
        expected_digest=s.digest,
        signature=s.signature,
    )
    assert err.check == "internal" and "RuntimeError: disk on fire" in err.reason


def test_verified_artifact_cannot_be_forged() -> None:
    from datetime import UTC, datetime

    from modelfleet.trust import Signer, VerifiedArtifact

    with pytest.raises(TypeError):
        VerifiedArtifact(
            digest="sha256:" + "0" * 64,
            model_digest=None,
            policy="p",
            signers=(Signer("a", "key", "s"),),
            provenance=(),
            verified_at=datetime.now(UTC),
        )


def test_symlinks_inside_the_model_are_accepted_only_when_the_policy_allows(tmp_path: Path) -> None:
    from modelfleet.trust import Hashing, pack_model, sign_model

    s = make_signed_model(tmp_path, archive=True)
    os.symlink("config.json", s.model_dir / "config-link.json")
    allow = Hashing(allow_symlinks=True)
    sig = tmp_path / "links.sig"
    sign_model(s.model_dir, sig, private_key=s.key, hashing=allow)
    tar = tmp_path / "links.tar"
    digest = pack_model(s.model_dir, tar)
    authorities = [{"name": "k", "key": {"data": s.public_key_pem}}]
    permissive = parse_policy({"authorities": authorities, "hashing": {"allowSymlinks": True}})
    assert verify_artifact(permissive, tar, expected_digest=digest, signature=sig).model_digest
    strict = parse_policy({"authorities": authorities})
    err = reject(verify_artifact, strict, tar, expected_digest=digest, signature=sig)
    assert err.check == "archive" and "symbolic link" in err.reason


def test_symlink_escaping_the_model_is_rejected_even_when_allowed(tmp_path: Path) -> None:
    from modelfleet.trust import Hashing, digest_file, sign_model

    s = make_signed_model(tmp_path, archive=True)
    sig = tmp_path / "s.sig"
    sign_model(s.model_dir, sig, private_key=s.key, hashing=Hashing(allow_symlinks=True))
    info = tarfile.TarInfo("config.json")
    info.type = tarfile.SYMTYPE
    info.linkname = "../../etc/passwd"
    evil = _tar_with(tmp_path, info)
    permissive = parse_policy(
        {
            "authorities": [{"name": "k", "key": {"data": s.public_key_pem}}],
            "hashing": {"allowSymlinks": True},
        }
    )
    err = reject(
        verify_artifact, permissive, evil, expected_digest=digest_file(evil), signature=sig
    )
    assert err.check == "archive" and "outside" in err.reason


def test_key_signed_dsse_bundle_over_an_artifact(tmp_path: Path) -> None:
    """A signed statement naming the artifact is a bundle ``verify-bundle`` accepts, never a
    release signature (issue 9: provenance is checked as an attestation only)."""
    import json

    from modelfleet.trust import digest_file
    from modelfleet.trust.signing import dsse_bundle
    from tests.trustkit.provenance import slsa_statement

    s = make_signed_model(tmp_path)
    bundle = tmp_path / "artifact.sigstore.json"
    bundle.write_text(json.dumps(dsse_bundle(slsa_statement(s.digest), s.key)))
    policy = load_policy(s.policy_path)
    err = reject(verify_artifact, policy, s.artifact, expected_digest=s.digest, signature=bundle)
    assert err.check == "signature-type"
    result = verify_model(policy, s.artifact, signature=bundle, accept_statements=True)
    assert result.signature_format == "sigstore-bundle" and result.model_digest is None
    other = tmp_path / "other.bin"
    other.write_bytes(b"other")
    err = reject(verify_model, policy, other, signature=bundle, accept_statements=True)
    assert err.check == "integrity"
    assert digest_file(other) != s.digest

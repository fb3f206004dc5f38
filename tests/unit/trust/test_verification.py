"""Verification beyond tampering: what is kept of a rejected model, what the policy may leave
out, shard hashing as model_signing does it, unexpected errors, forged results, statements."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelfleet.trust import load_policy, parse_policy, verify_artifact, verify_model
from tests.trustkit import make_signed_model
from tests.trustkit.rejections import reject


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

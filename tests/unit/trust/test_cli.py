"""``modelfleet sign`` / ``verify``: exit 0 only when verified, one line otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from modelfleet.cli.main import main
from tests.trustkit import make_key, make_signed_model, write_policy
from tests.trustkit.models import public_pem


def test_sign_then_verify_a_folder_and_its_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = make_key()
    key_path = tmp_path / "release.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    model = tmp_path / "resnet"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"w" * 1000)
    (model / "sub" / "config.json").write_text("{}")
    sig = model / "model.sig"  # inside the folder: left out of the manifest and of the tar
    tar = tmp_path / "resnet.tar"
    assert (
        main(
            [
                "sign",
                "--key",
                str(key_path),
                "--signature",
                str(sig),
                "--pack",
                str(tar),
                str(model),
            ]
        )
        == 0
    )
    digest = capsys.readouterr().out.strip().splitlines()[-1].split(": ")[-1]
    policy = write_policy(
        tmp_path / "trust.yaml", [{"name": "k", "key": {"data": public_pem(key)}}]
    )
    assert main(["verify", "--policy", str(policy), "--signature", str(sig), str(model)]) == 0
    assert (
        main(
            [
                "verify",
                "--policy",
                str(policy),
                "--signature",
                str(sig),
                "--digest",
                digest,
                str(tar),
            ]
        )
        == 0
    )
    assert (
        main(["verify", "--json", "--policy", str(policy), "--signature", str(sig), str(model)])
        == 0
    )
    assert '"verified": true' in capsys.readouterr().out


def test_verify_rejection_is_exit_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact, sig, policy, _digest = make_signed_model(tmp_path)
    artifact.write_bytes(b"tampered")
    assert main(["verify", "--policy", str(policy), "--signature", str(sig), str(artifact)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("modelfleet verify: integrity: ")


def test_verify_with_ignore_flag(tmp_path: Path) -> None:
    s = make_signed_model(tmp_path, archive=True)
    (s.model_dir / "notes.txt").write_text("local notes")
    base = ["verify", "--policy", str(s.policy_path), "--signature", str(s.signature)]
    assert main([*base, str(s.model_dir)]) == 1
    assert main([*base, "--ignore", "notes.txt", str(s.model_dir)]) == 0


def test_verify_with_wrong_digest_fails(tmp_path: Path) -> None:
    s = make_signed_model(tmp_path, archive=True)
    base = ["verify", "--policy", str(s.policy_path), "--signature", str(s.signature)]
    assert main([*base, "--digest", "sha256:" + "1" * 64, str(s.artifact)]) == 1


def test_verify_bundle_needs_key_or_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b.json").write_text("{}")
    assert main(["verify-bundle", "--bundle", str(tmp_path / "b.json"), str(tmp_path / "a")]) == 1
    assert "--certificate-identity" in capsys.readouterr().err


def test_help_explains_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("sign", "verify", "verify-bundle"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "exit status" in out or "examples" in out


def test_verify_keyless_with_a_trust_root_file_next_to_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.trustkit.sigstore import GITHUB_ISSUER, PrivateSigstore

    sigstore = PrivateSigstore()
    sigstore.write_trusted_root(tmp_path / "trusted_root.json")
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 100)
    identity = "release@acme.example"
    sig = sigstore.sign_model(model, tmp_path / "model.sig", identity, GITHUB_ISSUER)
    keyless = {
        "identities": [{"issuer": GITHUB_ISSUER, "subjectRegExp": r"[a-z]+@acme\.example"}],
        "trustRoot": {"file": "trusted_root.json"},
    }
    policy = write_policy(tmp_path / "trust.yaml", [{"name": "ci", "keyless": keyless}])
    assert main(["verify", "--policy", str(policy), "--signature", str(sig), str(model)]) == 0
    assert identity in capsys.readouterr().out

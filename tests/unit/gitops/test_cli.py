"""The release, history and rollback commands end to end through ``modelfleet.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelfleet.cli.main import main
from tests.trustkit import make_signed_model
from tests.unit.gitops.gitkit import GitRepo, digest_of


@pytest.mark.parametrize("command", ["release", "rollback", "history", "sync"])
def test_help_explains_each_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_release_then_history_then_rollback(
    repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signed = make_signed_model(tmp_path / "build", policy_name="prod-signers")
    repo.commit("policy", {"trustpolicies/prod.yaml": signed.policy_path.read_text()})
    repo.release("2.0.0", digest_of("2"))
    args = [
        "release",
        "retail/detector",
        "--repo",
        str(repo.path),
        "--version",
        "2.1.0",
        "--uri",
        signed.artifact.as_uri(),
        "--signature-uri",
        signed.signature.as_uri(),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "release retail/detector: detector 2.1.0" in out
    assert "branch release/retail/detector/2.1.0" in out
    repo.git("merge", "-q", "release/retail/detector/2.1.0")

    assert main(["history", "detector", "--repo", str(repo.path), "--json"]) == 0
    versions = json.loads(capsys.readouterr().out)["versions"]
    assert [v["version"] for v in versions] == ["2.1.0", "2.0.0"]
    assert versions[0]["digest"] == signed.digest

    assert main(["rollback", "detector", "--repo", str(repo.path), "--dry-run"]) == 0
    assert "would retail/detector: 2.1.0 -> 2.0.0: revert" in capsys.readouterr().out
    assert main(["rollback", "detector", "--repo", str(repo.path)]) == 0
    assert "rollback retail/detector: 2.1.0 -> 2.0.0" in capsys.readouterr().out
    assert repo.read_release()["spec"]["version"] == "2.0.0"


def test_refusal_is_one_line_and_exit_code_one(
    repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signed = make_signed_model(tmp_path / "build")
    args = [
        "release",
        "retail/detector",
        "--repo",
        str(repo.path),
        "--version",
        "1.0.0",
        "--uri",
        signed.artifact.as_uri(),
        "--trust-policy",
        "prod-signers",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("modelfleet release: TrustPolicy 'prod-signers'")


def test_sync_trust_from_needs_require_signed(
    repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["sync", str(repo.path), "--trust-from", repo.head(), "--cache-dir", str(tmp_path)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["modelfleet sync: --trust-from only makes sense with --require-signed"]

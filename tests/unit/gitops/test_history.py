"""``release_history``: versions of one release from git log, with merges and unrelated commits."""

from __future__ import annotations

import subprocess
from pathlib import Path

import git
import pytest

from modelfleet.gitops import ReleaseNotFound, ReleaseRef, release_history
from modelfleet.gitops.history import format_table
from tests.unit.gitops.gitkit import GitRepo, digest_of, release_manifest

REF = ReleaseRef("retail", "detector")


def test_lists_only_commits_that_change_version_or_digest_newest_first(repo: GitRepo) -> None:
    c1 = repo.release("1.0.0", digest_of("1"))
    repo.commit("unrelated docs", {"docs/x.md": "x\n"})
    c2 = repo.release("1.1.0", digest_of("2"))
    repo.commit(
        "tune gates only",
        {"releases/retail/detector.yaml": release_manifest("1.1.0", digest_of("2"), paused=True)},
    )
    c3 = repo.release("1.1.0", digest_of("3"))  # same version, rebuilt artifact
    entries = release_history(git.Repo(repo.path), REF)
    assert [e.commit for e in entries] == [c3, c2, c1]
    assert [e.version for e in entries] == ["1.1.0", "1.1.0", "1.0.0"]
    assert entries[0].previous_digest == digest_of("2")
    assert entries[-1].change == "added" and entries[-1].previous_version is None


def test_reports_author_date_and_unsigned_commits(repo: GitRepo) -> None:
    repo.release("1.0.0")
    (entry,) = release_history(git.Repo(repo.path), REF)
    assert entry.author == "Release Bot" and entry.email == "bot@example.com"
    assert entry.date[:4].isdigit() and "T" in entry.date
    assert entry.signature.status == "N" and not entry.signature.signed


def test_change_merged_from_a_branch_is_attributed_to_the_commit_that_made_it(
    repo: GitRepo,
) -> None:
    repo.release("1.0.0", digest_of("1"))
    repo.git("checkout", "-q", "-b", "feature")
    side = repo.release("2.0.0", digest_of("2"))
    repo.git("checkout", "-q", "main")
    repo.commit("unrelated on main", {"docs/y.md": "y\n"})
    repo.git("merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
    merge = repo.head()
    r = git.Repo(repo.path)
    assert release_history(r, REF)[0].commit == side
    landed = release_history(r, REF, first_parent=True)[0]
    assert landed.commit == merge and landed.is_merge
    assert (landed.previous_version, landed.version) == ("1.0.0", "2.0.0")


def test_removed_release_shows_as_removed(repo: GitRepo) -> None:
    repo.release("1.0.0")
    repo.git("rm", "-q", "releases/retail/detector.yaml")
    repo.git("commit", "-q", "-m", "retire detector")
    entries = release_history(git.Repo(repo.path), REF)
    assert entries[0].change == "removed" and entries[0].version is None
    assert "(removed)" in format_table(entries)


def test_unknown_release_is_not_found(repo: GitRepo) -> None:
    with pytest.raises(ReleaseNotFound, match="retail/detector"):
        release_history(git.Repo(repo.path), REF)


def test_ssh_signed_commit_is_good_with_the_allowed_signers_file(
    repo: GitRepo, tmp_path: Path
) -> None:
    key = tmp_path / "signing_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rel", "-f", str(key)], check=True
    )
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"bot@example.com {key.with_suffix('.pub').read_text()}", encoding="utf-8")
    repo.git("config", "gpg.format", "ssh")
    repo.git("config", "user.signingkey", str(key))
    repo.git("config", "commit.gpgsign", "true")
    repo.release("1.0.0", digest_of("1"))
    repo.git("config", "commit.gpgsign", "false")
    repo.release("1.1.0", digest_of("2"))
    r = git.Repo(repo.path)
    unsigned, signed = release_history(r, REF, allowed_signers=allowed)
    assert signed.signature.status == "G" and signed.signature.trusted
    assert signed.signature.signer == "bot@example.com"
    assert signed.signature.fingerprint.startswith("SHA256:")
    assert not unsigned.signature.signed
    # without the allowed-signers file git cannot tell who signed
    assert not release_history(r, REF)[1].signature.trusted


def test_table_and_json_forms(repo: GitRepo) -> None:
    repo.release("1.0.0", digest_of("1"))
    entries = release_history(git.Repo(repo.path), REF)
    table = format_table(entries).splitlines()
    assert table[0].split()[:4] == ["COMMIT", "DATE", "AUTHOR", "VERSION"]
    assert "1.0.0" in table[1] and "1" * 12 in table[1]
    data = entries[0].to_json()
    assert data["version"] == "1.0.0" and data["signature"]["signed"] is False


def test_rollout_outcomes_join_status_history_by_commit_then_by_version(repo: GitRepo) -> None:
    from modelfleet.gitops.history import rollout_outcomes

    c1 = repo.release("1.0.0", digest_of("1"))
    repo.release("1.1.0", digest_of("2"))
    c3 = repo.release("2.0.0", digest_of("3"))
    repo.release("2.1.0", digest_of("4"))
    entries = release_history(git.Repo(repo.path), REF)  # 2.1.0, 2.0.0, 1.1.0, 1.0.0
    live = {
        "status": {
            "phase": "Progressing",
            "reason": "Baking",
            "stable": {"version": "1.0.0", "digest": digest_of("1"), "since": "2026-11-01T00:00:00Z",
                       "verification": {"signer": "ci@example.com", "issuer": "https://issuer",
                                        "modelDigest": "sha256:" + "m" * 64}},
            "target": {"version": "2.1.0", "digest": digest_of("4"), "since": "2026-11-30T00:00:00Z"},
            "history": [
                {"version": "1.0.0", "digest": digest_of("1"), "outcome": "Succeeded",
                 "revision": c1, "startedAt": "2026-10-01T00:00:00Z",
                 "finishedAt": "2026-10-01T01:00:00Z"},
                {"version": "2.0.0", "digest": digest_of("3"), "outcome": "Aborted",
                 "revision": c3[:12], "reason": "ErrorRateExceeded",
                 "startedAt": "2026-11-02T00:00:00Z", "finishedAt": "2026-11-02T00:10:00Z"},
            ],
        }
    }  # fmt: skip
    by_version = dict(
        zip([e.version for e in entries], rollout_outcomes(entries, live), strict=True)
    )
    assert by_version["1.1.0"] is None  # never ran on this cluster
    aborted = by_version["2.0.0"]
    assert aborted is not None and (aborted.outcome, aborted.reason) == (
        "Aborted",
        "ErrorRateExceeded",
    )
    stable = by_version["1.0.0"]
    assert stable is not None and (stable.outcome, stable.live) == ("Succeeded", "stable")
    assert (stable.signer, stable.model_digest) == ("ci@example.com", "sha256:" + "m" * 64)
    target = by_version["2.1.0"]
    assert target is not None and (target.outcome, target.live) == ("Progressing", "target")
    table = format_table(entries, rollout_outcomes(entries, live)).splitlines()
    assert table[0].split()[:6] == ["COMMIT", "DATE", "VERSION", "DIGEST", "SIGNED", "OUTCOME"]
    assert "Aborted (ErrorRateExceeded)" in table[2] and "Succeeded [stable]" in table[4]
    assert "ci@example.com" in table[4]

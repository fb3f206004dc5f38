"""The version history of one release stream, read from ``git log`` of its manifest.

An entry is a commit that changed the release's version or digest (or added or removed the
file), compared with the commit's first parent; commits that touched only other fields, or other
files, are not versions. ``git log`` runs with its default history simplification, so a change
that arrived through a merge is attributed to the commit that made it, and a merge appears only
when it changed the version itself (e.g. a conflict resolved to a third value).

Each entry carries git's verdict on the commit signature (``%G?``): GPG or SSH, checked against
the user's keyring / ``gpg.ssh.allowedSignersFile`` (or the file given here).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import git
import yaml

from modelfleet.gitops.errors import ReleaseNotFound
from modelfleet.gitops.manifest import ReleaseRef, release_summary
from modelfleet.gitops.repo import read_blob, run

#: ``%G?`` codes, as git documents them.
SIGNATURE_STATUS: dict[str, str] = {
    "G": "good",
    "U": "good, unknown validity",
    "X": "good, expired signature",
    "Y": "good, expired key",
    "R": "good, revoked key",
    "B": "bad",
    "E": "cannot be checked",
    "N": "unsigned",
}

_FIELDS = ("%H", "%P", "%an", "%ae", "%aI", "%G?", "%GS", "%GF", "%s", "%b")
_FORMAT = "%x1f".join(_FIELDS) + "%x1e"
_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{7,40})")


@dataclass(frozen=True)
class CommitSignature:
    """git's verdict on a commit's signature."""

    status: str  # one %G? letter
    signer: str  # %GS: the signer name / principal, empty when unsigned
    fingerprint: str  # %GF

    @property
    def signed(self) -> bool:
        return self.status != "N"

    @property
    def trusted(self) -> bool:
        """A good signature from a key git considers valid (GPG trust or SSH allowed signers)."""
        return self.status == "G"

    @property
    def meaning(self) -> str:
        return SIGNATURE_STATUS.get(self.status, self.status)


@dataclass(frozen=True)
class HistoryEntry:
    """One version of a release: the commit that set it and what it set."""

    commit: str
    parents: tuple[str, ...]
    author: str
    email: str
    date: str  # ISO 8601 author date
    subject: str
    change: str  # added | changed | removed
    version: str | None
    digest: str | None
    previous_version: str | None
    previous_digest: str | None
    signature: CommitSignature
    reverts: str | None  # the commit this one reverts, from its message

    @property
    def short(self) -> str:
        return self.commit[:12]

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["parents"] = list(self.parents)
        data["signature"] = {
            **asdict(self.signature),
            "signed": self.signature.signed,
            "meaning": self.signature.meaning,
        }
        return data


def _state(commit: git.Commit | None, path: str) -> tuple[bool, str | None, str | None]:
    if commit is None:
        return False, None, None
    text = read_blob(commit, path)
    if text is None:
        return False, None, None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return True, None, None
    _, version, digest = release_summary(data if isinstance(data, Mapping) else {})
    return True, version, digest


def signature_config(allowed_signers: Path | None) -> tuple[str, ...]:
    """``-c`` options making git check SSH signatures against an allowed-signers file."""
    if allowed_signers is None:
        return ()
    return ("-c", f"gpg.ssh.allowedSignersFile={allowed_signers.resolve()}")


def release_history(
    repo: git.Repo,
    ref: ReleaseRef,
    *,
    rev: str = "HEAD",
    limit: int | None = None,
    first_parent: bool = False,
    allowed_signers: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> list[HistoryEntry]:
    """Versions of ``ref`` reachable from ``rev``, newest first.

    With ``first_parent``, only the branch's own line is walked: a version that arrived through a
    merge is attributed to the merge commit, i.e. to when it landed on this branch.
    """
    path = str(ref.path)
    out = run(
        repo,
        *signature_config(allowed_signers),
        "log",
        *(("--first-parent",) if first_parent else ()),
        f"--format={_FORMAT}",
        rev,
        "--",
        path,
        env=dict(env) if env else None,
    )
    entries: list[HistoryEntry] = []
    for raw in out.split("\x1e"):
        record = raw.strip("\n")
        if not record:
            continue
        sha, parents, author, email, date, status, signer, fpr, subject, body = record.split("\x1f")
        commit = repo.commit(sha)
        parent = commit.parents[0] if commit.parents else None
        exists, version, digest = _state(commit, path)
        existed, prev_version, prev_digest = _state(parent, path)
        if exists and existed and (version, digest) == (prev_version, prev_digest):
            continue
        if not exists and not existed:
            continue
        change = "added" if not existed else ("removed" if not exists else "changed")
        reverted = _REVERTS.search(body)
        entries.append(
            HistoryEntry(
                commit=sha,
                parents=tuple(parents.split()),
                author=author,
                email=email,
                date=date,
                subject=subject,
                change=change,
                version=version,
                digest=digest,
                previous_version=prev_version,
                previous_digest=prev_digest,
                signature=CommitSignature(status or "N", signer, fpr),
                reverts=reverted.group(1) if reverted else None,
            )
        )
        if limit is not None and len(entries) >= limit:
            break
    if not entries:
        raise ReleaseNotFound(f"no commit reachable from {rev} sets a version of {ref} ({path})")
    return entries


def format_table(entries: list[HistoryEntry]) -> str:
    """A plain-text table, newest first, as ``modelfleet history`` prints it."""
    rows = [("COMMIT", "DATE", "AUTHOR", "VERSION", "DIGEST", "SIGNED", "SUBJECT")]
    for e in entries:
        digest = (e.digest or "-").removeprefix("sha256:")[:12]
        signed = (
            e.signature.meaning
            if not e.signature.signer
            else (f"{e.signature.meaning} ({e.signature.signer})")
        )
        version = e.version if e.change != "removed" else "(removed)"
        rows.append(
            (e.short, e.date[:19], e.author, version or "-", digest, signed, e.subject[:60])
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, r[-1]]).rstrip())
    return "\n".join(lines)

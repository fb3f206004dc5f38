"""The version history of one release stream, read from ``git log`` of its manifest.

An entry is a commit that changed the release's version or digest (or added or removed the
file), compared with the commit's first parent; commits that touched only other fields, or other
files, are not versions. ``git log`` runs with its default history simplification, so a change
that arrived through a merge is attributed to the commit that made it, and a merge appears only
when it changed the version itself (e.g. a conflict resolved to a third value).

Each entry carries git's verdict on the commit signature (``%G?``): GPG or SSH, checked against
the user's keyring / ``gpg.ssh.allowedSignersFile`` (or the file given here).

:func:`rollout_outcomes` joins these entries with the live ModelRelease's ``status.history`` (and
its current ``stable`` / ``target``): what ran where, since when, verified by whom, from which
commit. It is pure (the caller reads the object); without an object the history is Git's alone.
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


@dataclass(frozen=True)
class RolloutOutcome:
    """What the cluster did with one version (``status.history`` and the live status)."""

    outcome: str  # Succeeded | Aborted | Rejected | Superseded | Reverted, or the live phase
    started_at: str | None = None
    finished_at: str | None = None
    reason: str | None = None
    model_digest: str | None = None
    revision: str | None = None  # the commit status.source named when it ran
    live: str | None = None  # "stable" (what gateways run now) or "target" (rolling out)
    signer: str | None = None  # from the live verification of stable / target
    issuer: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Every field under its camelCase name (``startedAt``), ``None`` included."""
        return {_camel(name): value for name, value in asdict(self).items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _same_commit(a: str | None, b: str | None) -> bool:
    return bool(a and b and len(min(a, b, key=len)) >= 7 and (a.startswith(b) or b.startswith(a)))


def rollout_outcomes(
    entries: list[HistoryEntry], release: Mapping[str, Any]
) -> list[RolloutOutcome | None]:
    """For each entry, the rollout of its version on the cluster (``None``: never ran there).

    A ``status.history`` record belongs to the entry whose commit it names; records without a
    commit match by version and digest (the newest record wins). The versions the release runs
    now (``status.stable``) or rolls out (``status.target``) are marked ``live``."""
    status = release.get("status") or {}
    history = [h for h in status.get("history") or [] if isinstance(h, Mapping)]
    live = {
        key: snap
        for key in ("stable", "target")
        if isinstance(snap := status.get(key), Mapping) and snap.get("version")
    }
    out: list[RolloutOutcome | None] = []
    for entry in entries:
        by_commit = [h for h in history if _same_commit(h.get("revision"), entry.commit)]
        by_version = [
            h
            for h in history
            if not h.get("revision")
            and h.get("version") == entry.version
            and h.get("digest") == entry.digest
        ]
        matches = by_commit or by_version
        found: Mapping[str, Any] | None = matches[-1] if matches else None
        which = next(
            (
                k
                for k, snap in live.items()
                if snap.get("version") == entry.version and snap.get("digest") == entry.digest
            ),
            None,
        )
        if found is None and which is None:
            out.append(None)
            continue
        snap = live.get(which or "") or {}
        verification = snap.get("verification") or {}
        if found is not None:
            outcome = str(found.get("outcome") or "-")
        elif which == "stable":
            outcome = "Succeeded"
        else:
            outcome = str(status.get("phase") or "Pending")
        out.append(
            RolloutOutcome(
                outcome=outcome,
                started_at=(found or {}).get("startedAt") or snap.get("since"),
                finished_at=(found or {}).get("finishedAt"),
                reason=(found or {}).get("reason")
                if found is not None
                else (status.get("reason") if which == "target" else None),
                model_digest=(found or {}).get("modelDigest") or verification.get("modelDigest"),
                revision=(found or {}).get("revision"),
                live=which,
                signer=verification.get("signer"),
                issuer=verification.get("issuer"),
            )
        )
    return out


def format_table(
    entries: list[HistoryEntry], outcomes: list[RolloutOutcome | None] | None = None
) -> str:
    """A plain-text table, newest first, as ``modelfleet history`` prints it; with
    ``outcomes`` (from the cluster), what happened to each version there too."""
    if outcomes is not None:
        return _table_with_outcomes(entries, outcomes)
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


def _table_with_outcomes(entries: list[HistoryEntry], outcomes: list[RolloutOutcome | None]) -> str:
    head = ("COMMIT", "DATE", "VERSION", "DIGEST", "SIGNED", "OUTCOME", "RAN", "VERIFIED BY")
    rows = [(*head, "SUBJECT")]
    for e, o in zip(entries, outcomes, strict=True):
        digest = (e.digest or "-").removeprefix("sha256:")[:12]
        signed = e.signature.meaning + (f" ({e.signature.signer})" if e.signature.signer else "")
        if o is None:
            outcome, ran, who = "-", "-", "-"
        else:
            outcome = o.outcome + (f" ({o.reason})" if o.reason and o.outcome != o.reason else "")
            if o.live:
                outcome += f" [{o.live}]"
            ran = (o.started_at or "?")[:19] + " .. " + ((o.finished_at or "now")[:19])
            who = o.signer or "-"
            if who.startswith("sha256:"):  # a key's fingerprint
                who = "key " + who.removeprefix("sha256:")[:12]
        version = e.version if e.change != "removed" else "(removed)"
        rows.append(
            (
                e.short,
                e.date[:19],
                version or "-",
                digest,
                signed,
                outcome,
                ran,
                who,
                e.subject[:60],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip()
        for r in rows
    )

"""The Git side of ``modelfleet sync``: fetch a repository into a cache, check the commit's
signature, and read the manifests under a path at that commit.

The cache holds one bare repository per URL (``<cache>/<sha256(url)[:16]>.git``); each sync
fetches the wanted ref into ``refs/modelfleet/sync`` and reads blobs straight from the commit's
tree, so there is no working tree to get dirty and no checkout to race with. The git CLI does the
transport: ``file://`` and local paths, ``https://`` (credential helpers, ``GIT_ASKPASS``) and
``ssh://`` / scp-like URLs (``--ssh-key`` sets ``GIT_SSH_COMMAND``).

Signed commits: with a :class:`SignaturePolicy` every commit the sync has not yet trusted must
carry a good signature from an allowed key, not only the tip: a signed (even empty) commit on
top of an unsigned one vouches for nothing. The commits checked are ``git rev-list TIP
^APPLIED ^TRUST_FROM``: everything reachable from the new tip (first-parent line and merged side
branches alike) that is not reachable from the last applied revision (the ref
``refs/modelfleet/verified/<sync name>`` in the cache, moved only after a successful sync that
required signatures, so turning ``--require-signed`` on later trusts nothing applied before) or
from the operator-given ``--trust-from`` revision. Without either (the first run, or a lost cache)
that is the whole history, so a repository with unsigned old commits needs ``--trust-from`` once.
SSH signatures are checked by git against ``gpg.ssh.allowedSignersFile`` (only keys listed there
verify as good, ``%G?`` = ``G``); GPG signatures against a keyring (``GNUPGHOME``), accepted when
``%G?`` is ``G``, or ``U`` (good, key not certified) with the key's fingerprint in
``allowed_gpg_keys``.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import git
import yaml

from modelfleet.gitops.errors import GitCommandFailed, SyncFailed, UntrustedCommit
from modelfleet.gitops.history import CommitSignature, signature_config
from modelfleet.gitops.repo import run

SYNC_REF = "refs/modelfleet/sync"
APPLIED_REF_PREFIX = "refs/modelfleet/verified/"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class GitSource:
    """Where manifests come from: repository URL, ref (branch, tag, commit or HEAD), path."""

    url: str
    ref: str = "HEAD"
    path: str = "."
    ssh_key: Path | None = None

    def env(self) -> dict[str, str]:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        if self.ssh_key is not None:
            env["GIT_SSH_COMMAND"] = (
                f"ssh -i {shlex.quote(str(self.ssh_key))} -o IdentitiesOnly=yes -o BatchMode=yes"
            )
        return env


@dataclass(frozen=True)
class SignaturePolicy:
    """Which commit signatures a sync accepts."""

    allowed_signers: Path | None = None  # SSH: git's allowed-signers file
    gpg_home: Path | None = None  # GPG: keyring with the allowed public keys
    allowed_gpg_keys: tuple[str, ...] = ()  # GPG fingerprints accepted even if not certified

    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.gpg_home)} if self.gpg_home is not None else {}


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object read from the repository."""

    path: str  # the file it came from, relative to the repository root
    doc: dict[str, Any]


def cache_path(cache_dir: Path, url: str) -> Path:
    return cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.git"


def fetch(source: GitSource, cache_dir: Path) -> tuple[git.Repo, str]:
    """Fetch ``source.ref`` into the cache; return the cached repository and the commit SHA."""
    where = cache_path(cache_dir, source.url)
    if not (where / "HEAD").exists():
        where.mkdir(parents=True, exist_ok=True)
        repo = git.Repo.init(where, bare=True)
        run(repo, "remote", "add", "origin", source.url)
    else:
        repo = git.Repo(where)
        run(repo, "remote", "set-url", "origin", source.url)
    try:
        run(
            repo,
            "fetch",
            "--quiet",
            "--force",
            "--no-tags",
            "origin",
            f"+{source.ref}:{SYNC_REF}",
            env=source.env(),
        )
    except GitCommandFailed as exc:
        raise SyncFailed(f"cannot fetch {source.ref} from {source.url}: {exc}") from None
    return repo, repo.commit(SYNC_REF).hexsha


def _judge(sig: CommitSignature, policy: SignaturePolicy) -> str | None:
    """Why ``sig`` is not acceptable under ``policy``; ``None`` when it is."""
    fingerprint = sig.fingerprint.replace(" ", "").upper()
    allowed = {k.replace(" ", "").upper() for k in policy.allowed_gpg_keys if k.strip()}
    listed = any(fingerprint.endswith(k) for k in allowed) if fingerprint else False
    ssh = fingerprint.startswith("SHA256:")  # only allowed-signers keys verify as G
    if sig.status == "G" and (ssh or not allowed or listed):
        return None
    if sig.status == "U" and listed:
        return None
    reason = {
        "N": "is not signed",
        "B": "has a bad signature",
        "E": "is signed by a key that is not allowed (or the signature cannot be checked)",
        "G": "is signed by a GPG key that is not in the allowed keys",
        "U": "is signed by a GPG key that is neither certified nor in the allowed keys",
    }.get(sig.status, f"has a signature git rates {sig.meaning!r}")
    who = f" ({sig.signer or sig.fingerprint})" if sig.signer or sig.fingerprint else ""
    return f"{reason}{who}"


_SIG_FORMAT = "%H%x1f%G?%x1f%GS%x1f%GF%x1f%GP%x1f%s%x1e"


def _signatures(
    repo: git.Repo, policy: SignaturePolicy, revs: list[str]
) -> list[tuple[str, str, CommitSignature]]:
    """``(sha, subject, signature)`` of every commit ``git log revs`` lists (no walk
    simplification: merges and their side branches are all there), oldest first."""
    out = run(
        repo,
        *signature_config(policy.allowed_signers),
        "log",
        "--no-show-signature",  # a user's log.showSignature must not mix gpg output in
        "--reverse",
        f"--format={_SIG_FORMAT}",
        *revs,
        "--",
        env={**os.environ, **policy.env()},
    )
    found = []
    for raw in out.split("\x1e"):
        record = raw.strip("\n")
        if not record:
            continue
        sha, status, signer, fpr, primary, subject = ([*record.split("\x1f"), *[""] * 6])[:6]
        found.append((sha, subject, CommitSignature(status or "N", signer, fpr or primary)))
    return found


def commit_signature(repo: git.Repo, sha: str, policy: SignaturePolicy) -> CommitSignature:
    """git's verdict on ``sha``'s signature under ``policy``'s keys."""
    return _signatures(repo, policy, ["-1", sha])[0][2]


def resolve_commit(repo: git.Repo, rev: str, what: str) -> str:
    """The full SHA of commit ``rev`` in the cached repository."""
    try:
        return run(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except GitCommandFailed:
        raise SyncFailed(
            f"{what} {rev!r} is not a commit of the fetched history (give a full commit SHA "
            "that is an ancestor of the synced ref)"
        ) from None


def is_ancestor(repo: git.Repo, ancestor: str, tip: str) -> bool:
    try:
        run(repo, "merge-base", "--is-ancestor", ancestor, tip)
    except GitCommandFailed:
        return False
    return True


def applied_revision(repo: git.Repo, name: str) -> str | None:
    """The last revision sync ``name`` applied from this repository, if it remembers one."""
    try:
        return run(repo, "rev-parse", "--verify", "--quiet", f"{APPLIED_REF_PREFIX}{name}").strip()
    except GitCommandFailed:
        return None


def mark_applied(repo: git.Repo, name: str, sha: str) -> None:
    """Remember ``sha`` as applied (also keeps its history in the cache for the next range)."""
    run(repo, "update-ref", f"{APPLIED_REF_PREFIX}{name}", sha)


def require_trusted_range(
    repo: git.Repo,
    tip: str,
    policy: SignaturePolicy,
    *,
    applied: str | None,
    trust_from: str | None,
) -> CommitSignature:
    """Refuse ``tip`` unless every commit reachable from it and not from ``applied`` or
    ``trust_from`` (both already trusted) is signed by an allowed key; the tip's signature.

    ``trust_from`` must be an ancestor of ``tip``. Merges and the commits of merged branches are
    checked like any other commit. The error names the (oldest) commits that fail.
    """
    excluded = []
    if trust_from is not None:
        base = resolve_commit(repo, trust_from, "--trust-from")
        if not is_ancestor(repo, base, tip):
            raise UntrustedCommit(
                f"--trust-from {trust_from} ({base[:12]}) is not an ancestor of {tip[:12]}; "
                "refusing to sync"
            )
        excluded.append(f"^{base}")
    if applied is not None:
        excluded.append(f"^{applied}")
    commits = _signatures(repo, policy, [tip, *excluded])
    judged = [(sha, subject, _judge(sig, policy)) for sha, subject, sig in commits]
    bad = [(sha, subject, why) for sha, subject, why in judged if why is not None]
    if bad:
        since = (
            f"since {applied[:12]} (last applied)"
            if applied
            else f"since --trust-from {trust_from}"
            if trust_from
            else "in the whole history (first sync: pass --trust-from REV to trust a base)"
        )
        shown = "; ".join(f"commit {sha[:12]} ({subject!r}) {why}" for sha, subject, why in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise UntrustedCommit(
            f"{shown}{more}: {len(bad)} of {len(commits)} commits {since} up to {tip[:12]} are "
            "not signed by an allowed key; refusing to sync"
        )
    if commits and commits[-1][0] == tip:
        return commits[-1][2]
    return commit_signature(repo, tip, policy)


def _walk(tree: git.Tree) -> Iterator[tuple[str, git.Blob]]:
    for item in tree.traverse():
        if isinstance(item, git.Blob) and str(item.path).endswith(MANIFEST_SUFFIXES):
            yield str(item.path), item


def read_manifests(repo: git.Repo, sha: str, path: str) -> list[Manifest]:
    """Every object in the YAML/JSON files under ``path`` at ``sha``, in file order."""
    commit = repo.commit(sha)
    rel = PurePosixPath(path.strip("/") or ".")
    try:
        tree = commit.tree if str(rel) == "." else commit.tree / str(rel)
    except KeyError:
        raise SyncFailed(f"path {path!r} does not exist at {sha[:12]}") from None
    if isinstance(tree, git.Blob):
        items: list[tuple[str, Any]] = [(str(tree.path), tree)]
    else:
        items = sorted(_walk(tree), key=lambda kv: kv[0])
    found: list[Manifest] = []
    for file_path, blob in items:
        if PurePosixPath(file_path).name in ("kustomization.yaml", "kustomization.yml"):
            continue
        text = blob.data_stream.read().decode("utf-8", errors="replace")
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise SyncFailed(f"{file_path} at {sha[:12]} is not valid YAML: {exc}") from None
        for i, doc in enumerate(d for d in docs if d is not None):
            where = f"{file_path} (document {i + 1})"
            if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
                raise SyncFailed(f"{where} is not a Kubernetes object (apiVersion, kind)")
            if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
                found += [Manifest(file_path, item) for item in doc["items"]]
                continue
            if not (doc.get("metadata") or {}).get("name"):
                raise SyncFailed(f"{where} has no metadata.name")
            found.append(Manifest(file_path, doc))
    return found


def last_change(repo: git.Repo, sha: str, file_path: str) -> str:
    """The last commit up to ``sha`` that changed ``file_path``."""
    return run(repo, "log", "-1", "--format=%H", sha, "--", file_path).strip() or sha

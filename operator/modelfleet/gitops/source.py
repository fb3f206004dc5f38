"""The Git side of ``modelfleet sync``: fetch a repository into a cache, check the commit's
signature, and read the manifests under a path at that commit.

The cache holds one bare repository per URL (``<cache>/<sha256(url)[:16]>.git``); each sync
fetches the wanted ref into ``refs/modelfleet/sync`` and reads blobs straight from the commit's
tree, so there is no working tree to get dirty and no checkout to race with. The git CLI does the
transport: ``file://`` and local paths, ``https://`` (credential helpers, ``GIT_ASKPASS``) and
``ssh://`` / scp-like URLs (``--ssh-key`` sets ``GIT_SSH_COMMAND``).

Signed commits: with a :class:`SignaturePolicy` the synced commit must carry a good signature
from an allowed key: SSH signatures are checked by git against ``gpg.ssh.allowedSignersFile``
(only keys listed there verify as good, ``%G?`` = ``G``); GPG signatures against a keyring
(``GNUPGHOME``), accepted when ``%G?`` is ``G``, or ``U`` (good, key not certified) with the
key's fingerprint in ``allowed_gpg_keys``.
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


def commit_signature(repo: git.Repo, sha: str, policy: SignaturePolicy) -> CommitSignature:
    """git's verdict on ``sha``'s signature under ``policy``'s keys."""
    out = run(
        repo,
        *signature_config(policy.allowed_signers),
        "log",
        "-1",
        "--format=%G?%x1f%GS%x1f%GF%x1f%GP",
        sha,
        env={**os.environ, **policy.env()},
    )
    status, signer, fpr, primary = ([*out.split("\x1f"), "", "", ""])[:4]
    return CommitSignature(status or "N", signer, fpr or primary)


def require_trusted(repo: git.Repo, sha: str, policy: SignaturePolicy) -> CommitSignature:
    """Refuse ``sha`` unless it is signed by an allowed key."""
    sig = commit_signature(repo, sha, policy)
    fingerprint = sig.fingerprint.replace(" ", "").upper()
    allowed = {k.replace(" ", "").upper() for k in policy.allowed_gpg_keys if k.strip()}
    listed = any(fingerprint.endswith(k) for k in allowed) if fingerprint else False
    ssh = fingerprint.startswith("SHA256:")  # only allowed-signers keys verify as G
    if sig.status == "G" and (ssh or not allowed or listed):
        return sig
    if sig.status == "U" and listed:
        return sig
    reason = {
        "N": "is not signed",
        "B": "has a bad signature",
        "E": "is signed by a key that is not allowed (or the signature cannot be checked)",
        "G": "is signed by a GPG key that is not in the allowed keys",
        "U": "is signed by a GPG key that is neither certified nor in the allowed keys",
    }.get(sig.status, f"has a signature git rates {sig.meaning!r}")
    who = f" ({sig.signer or sig.fingerprint})" if sig.signer or sig.fingerprint else ""
    raise UntrustedCommit(f"commit {sha[:12]} {reason}{who}; refusing to sync it")


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

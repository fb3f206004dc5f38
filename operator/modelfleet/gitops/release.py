"""``modelfleet release``: a new model version as a commit on a new branch, ready for review.

The release file ``releases/<namespace>/<name>.yaml`` is created or updated in a temporary
``git worktree`` of the base commit, so the user's checkout is never touched (no branch switch,
no stash). Before anything is committed the manifest must satisfy the CRD schema and the artifact
must satisfy its TrustPolicy (:mod:`modelfleet.gitops.verify`); either failure refuses the
release with the reason, and the branch is not left behind. The digest is computed from the
artifact's bytes (a local file, a ``file://`` URI, or an http(s) URI downloaded to a temporary
file); a ``--digest`` that disagrees with the bytes is a refusal.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import git

from modelfleet.fetch import Fetcher, FetchError, FetchLimits, FetchPolicy
from modelfleet.gitops import manifest
from modelfleet.gitops.errors import GitOpsError, ManifestInvalid, ReleaseRefused
from modelfleet.gitops.manifest import Artifact, ReleaseRef
from modelfleet.gitops.repo import open_repo, run
from modelfleet.gitops.verify import (
    ArtifactVerifier,
    Evidence,
    check_policy_name,
    find_policy_file,
    trust_verifier,
)
from modelfleet.trust.digest import digest_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseRequest:
    """Everything ``modelfleet release`` was asked to do."""

    ref: ReleaseRef
    version: str
    uri: str
    digest: str | None = None
    signature_uri: str | None = None
    attestation_uris: tuple[str, ...] = ()
    #: Local copies of the evidence, when the URIs are not local or reachable.
    artifact_file: Path | None = None
    signature_file: Path | None = None
    attestation_files: tuple[Path, ...] = ()
    #: Only used when the release file does not exist yet.
    model: str | None = None
    trust_policy: str | None = None
    selector: Mapping[str, str] = field(default_factory=dict)
    policy_file: Path | None = None
    base: str = "HEAD"
    branch: str | None = None
    push: bool = False
    remote: str = "origin"

    @property
    def branch_name(self) -> str:
        return self.branch or f"release/{self.ref.namespace}/{self.ref.name}/{self.version}"


@dataclass(frozen=True)
class ReleaseResult:
    ref: ReleaseRef
    branch: str
    commit: str
    path: str
    model: str
    version: str
    digest: str
    previous_version: str | None
    verified_by: str
    pushed: bool


def _fetch(location: str, given: Path | None, tmp: Path, what: str) -> Path:
    """A local file holding ``location``'s bytes."""
    if given is not None:
        return given
    local = manifest.local_path(location)
    if local is not None:
        return local
    if location.startswith(("https://", "http://", "oci://")):
        dest = tmp / f"{what}-{len(list(tmp.iterdir()))}"
        try:
            asyncio.run(_download(location, dest))
        except FetchError as exc:
            raise ReleaseRefused(f"cannot download the {what}: {exc.diagnostics()}") from None
        return dest
    raise ReleaseRefused(
        f"cannot read the {what} at {location}: pass a local copy with --{what}-file"
    )


async def _download(uri: str, dest: Path) -> None:
    """The one fetcher, as the user runs it: every scheme and host, the operator's size limit."""
    limits = FetchLimits(timeout=600.0)
    async with Fetcher(FetchPolicy.permissive(), limits) as fetcher:
        await fetcher.fetch(uri, dest, max_bytes=limits.max_artifact_bytes)


def _evidence(req: ReleaseRequest, tmp: Path) -> Evidence:
    artifact = _fetch(req.uri, req.artifact_file, tmp, "artifact")
    if not artifact.is_file():
        raise ReleaseRefused(f"artifact {artifact} does not exist or is not a file")
    digest = digest_file(artifact)
    if req.digest is not None and req.digest != digest:
        raise ReleaseRefused(
            f"--digest {req.digest} does not match the artifact's bytes ({artifact} is {digest})"
        )
    signature = None
    if req.signature_uri or req.signature_file:
        signature = _fetch(req.signature_uri or "", req.signature_file, tmp, "signature")
    files = list(req.attestation_files)
    for uri in req.attestation_uris[len(files) :]:
        files.append(_fetch(uri, None, tmp, "attestation"))
    return Evidence(artifact, digest, signature, tuple(files))


def _message(req: ReleaseRequest, model: str, digest: str, previous: str | None, by: str) -> str:
    lines = [
        f"release {req.ref}: {model} {req.version}",
        "",
        f"Roll out {model} {req.version}"
        + (f" (replacing {previous})" if previous else " (first release of this stream)")
        + ".",
        "",
        f"Model: {model}",
        f"Version: {req.version}",
        f"Digest: {digest}",
        f"Artifact: {req.uri}",
    ]
    if req.signature_uri:
        lines.append(f"Signature: {req.signature_uri}")
    lines.append(f"Verified: {by}")
    return "\n".join(lines) + "\n"


def create_release(
    repo_path: Path, req: ReleaseRequest, *, verifier: ArtifactVerifier = trust_verifier
) -> ReleaseResult:
    """Validate, verify and commit ``req`` on a new branch; the checkout is left untouched."""
    repo = open_repo(repo_path)
    try:
        base = repo.commit(req.base).hexsha
    except (git.BadName, ValueError):
        raise GitOpsError(f"base revision {req.base!r} does not exist") from None
    branch = req.branch_name
    if run(repo, "branch", "--list", branch).strip():
        raise ReleaseRefused(f"branch {branch} already exists; delete it or pass --branch")
    with tempfile.TemporaryDirectory(prefix="modelfleet-release-") as tmpdir:
        tmp = Path(tmpdir)
        work = tmp / "worktree"
        downloads = tmp / "downloads"
        downloads.mkdir()
        run(repo, "worktree", "add", "-q", "-b", branch, str(work), base)
        try:
            result = _release_in(work, downloads, req, branch, verifier)
        except BaseException:
            run(repo, "worktree", "remove", "--force", str(work))
            run(repo, "branch", "-q", "-D", branch)
            raise
        run(repo, "worktree", "remove", "--force", str(work))
    if req.push:
        run(repo, "push", "-q", req.remote, f"refs/heads/{branch}:refs/heads/{branch}")
        result = ReleaseResult(**{**result.__dict__, "pushed": True})
    return result


def _release_in(
    work: Path,
    downloads: Path,
    req: ReleaseRequest,
    branch: str,
    verifier: ArtifactVerifier,
) -> ReleaseResult:
    path = work / req.ref.path
    where = str(req.ref.path)
    evidence = _evidence(req, downloads)
    artifact = Artifact(req.uri, evidence.digest, req.signature_uri, req.attestation_uris)
    previous = None
    if path.exists():
        current = path.read_text("utf-8")
        before = manifest.validate_text(current, f"{where} (before this release)")
        _, previous, prev_digest = manifest.release_summary(before)
        if (previous, prev_digest) == (req.version, evidence.digest):
            raise ReleaseRefused(f"{req.ref} is already at {req.version} ({evidence.digest})")
        text = manifest.with_version(current, where, req.version, artifact)
    else:
        if not req.trust_policy:
            raise ReleaseRefused(f"{where} does not exist yet: pass --trust-policy to create it")
        doc = manifest.new_document(
            req.ref,
            model=req.model or req.ref.name,
            version=req.version,
            artifact=artifact,
            trust_policy=req.trust_policy,
            selector=req.selector,
        )
        text = manifest.dump_document(doc)
    try:
        data = manifest.validate_text(text, where)
    except ManifestInvalid as exc:
        raise ReleaseRefused(exc.diagnostics()) from None
    meta = data.get("metadata") or {}
    if (meta.get("namespace"), meta.get("name")) != (req.ref.namespace, req.ref.name):
        raise ReleaseRefused(
            f"{where} describes {meta.get('namespace')}/{meta.get('name')}, not {req.ref}"
        )
    model, _, _ = manifest.release_summary(data)
    policy_name = str(data["spec"]["trustPolicy"])
    policy_file = req.policy_file
    if policy_file is not None:
        check_policy_name(policy_file, policy_name)
    else:
        policy_file = find_policy_file(work, policy_name)
        if policy_file is None:
            raise ReleaseRefused(
                f"TrustPolicy {policy_name!r} is not in the repository at {req.base}; "
                "pass --policy-file (a release is never committed unverified)"
            )
    verified_by = verifier(policy_file, evidence)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    wt = git.Repo(work)
    run(wt, "add", "--", where)
    model = model or req.ref.name
    run(wt, "commit", "-q", "-m", _message(req, model, evidence.digest, previous, verified_by))
    commit = wt.head.commit.hexsha
    log.info("release %s %s committed as %s on %s", req.ref, req.version, commit[:12], branch)
    return ReleaseResult(
        ref=req.ref,
        branch=branch,
        commit=commit,
        path=where,
        model=model,
        version=req.version,
        digest=evidence.digest,
        previous_version=previous,
        verified_by=verified_by,
        pushed=False,
    )

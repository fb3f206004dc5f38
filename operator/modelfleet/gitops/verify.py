"""The release-time trust check: the artifact must satisfy its TrustPolicy before it is committed.

The policy is the ``TrustPolicy`` named by ``spec.trustPolicy``: from ``--policy-file`` when given,
otherwise the TrustPolicy manifest of that name found in the GitOps repository itself (the one
Argo CD or ``modelfleet sync`` will apply, at the commit the release branches from). Verification
is :func:`modelfleet.trust.verify_artifact`, the same code the operator and the agents run, so a
release the CLI accepts is one the operator will accept under the same policy.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from modelfleet.gitops.errors import ReleaseRefused
from modelfleet.trust import VerificationError, VerifiedArtifact, load_policy, verify_artifact


@dataclass(frozen=True)
class Evidence:
    """Local copies of what is verified: the artifact, its signature and attestations."""

    artifact: Path
    digest: str
    signature: Path | None
    attestations: tuple[Path, ...]


class ArtifactVerifier(Protocol):
    """Checks evidence against a policy file; returns a one-line summary of who signed."""

    def __call__(self, policy_file: Path, evidence: Evidence) -> str: ...


def find_policy_file(root: Path, name: str) -> Path | None:
    """The YAML file under ``root`` (tracked by git) holding the TrustPolicy ``name``."""
    try:
        out = subprocess.run(
            ["git", "grep", "-l", "-I", "-e", "kind: *TrustPolicy", "--", "*.yaml", "*.yml"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    except OSError:
        return None
    for rel in out.split():
        path = root / rel
        try:
            docs = list(yaml.safe_load_all(path.read_text("utf-8")))
        except (OSError, yaml.YAMLError):
            continue
        for doc in docs:
            if (
                isinstance(doc, dict)
                and doc.get("kind") == "TrustPolicy"
                and (doc.get("metadata") or {}).get("name") == name
            ):
                return path
    return None


def _describe(verified: VerifiedArtifact) -> str:
    who = f"{verified.authority} ({verified.authority_kind}) signer={verified.signer}"
    if verified.issuer:
        who += f" issuer={verified.issuer}"
    return f"TrustPolicy {verified.policy}: {who}"


def trust_verifier(policy_file: Path, evidence: Evidence) -> str:
    """The default verifier: :mod:`modelfleet.trust` against the policy file."""
    policy = None
    try:
        policy = load_policy(policy_file)
        verified = verify_artifact(
            policy,
            evidence.artifact,
            expected_digest=evidence.digest,
            signature=evidence.signature,
            attestations=list(evidence.attestations),
        )
    except VerificationError as exc:
        # The policy by its name, as the release and the cluster know it; its file only when
        # it cannot be read.
        which = f"{policy.name!r}" if policy is not None else f"from {policy_file}"
        raise ReleaseRefused(
            f"the artifact fails TrustPolicy {which}: {exc.diagnostics()}"
        ) from None
    return _describe(verified)


def check_policy_name(policy_file: Path, expected: str) -> None:
    """Refuse a ``--policy-file`` whose TrustPolicy is not the one the release names."""
    try:
        docs: Sequence[Any] = [d for d in yaml.safe_load_all(policy_file.read_text("utf-8")) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise ReleaseRefused(f"cannot read policy file {policy_file}: {exc}") from None
    names = {(d.get("metadata") or {}).get("name") for d in docs if isinstance(d, dict)}
    if expected not in names:
        raise ReleaseRefused(
            f"{policy_file} holds TrustPolicy {', '.join(map(str, names))}, but the release "
            f"names trustPolicy {expected!r}"
        )

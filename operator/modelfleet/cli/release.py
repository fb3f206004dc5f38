"""``modelfleet release``: commit a new model version to the GitOps repository, on a new branch.

Thin: parses flags into a :class:`~modelfleet.gitops.ReleaseRequest` and prints the result; the
work is :func:`modelfleet.gitops.create_release`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from modelfleet.cli import flags
from modelfleet.errors import ConfigError
from modelfleet.gitops.manifest import ReleaseRef, parse_release_ref
from modelfleet.gitops.release import ReleaseRequest, create_release

EPILOG = """\
what it does:
  1. creates or updates releases/<namespace>/<name>.yaml (one ModelRelease per model stream)
     with the new version, digest and URIs, in a temporary worktree: your checkout is untouched
  2. checks the manifest against the ModelRelease CRD schema (types, patterns, rollout rules)
  3. computes the artifact's sha256 (from --artifact-file, a file:// URI, or by downloading an
     http(s) URI); a --digest that disagrees with the bytes is refused
  4. verifies the artifact, its signature and attestations against the TrustPolicy the release
     names: --policy-file, or the TrustPolicy manifest of that name found in the repository
  5. commits on a new branch (default release/<namespace>/<name>/<version>) with a message
     stating model, version and digest; --push sends the branch to the remote
  Any failure refuses the release with the reason, and no branch is left behind.

examples:
  modelfleet release retail/detector --version 2.1.0 \\
      --uri https://models.example.com/detector/2.1.0/model.tar \\
      --artifact-file dist/model.tar --signature-file dist/model.sig \\
      --signature-uri https://models.example.com/detector/2.1.0/model.sig --push
  modelfleet release retail/detector --version 2.1.0 --uri file:///srv/models/detector-2.1.0.tar \\
      --signature-uri file:///srv/models/detector-2.1.0.sig --trust-policy prod-signers
"""


def _labels(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise ConfigError(f"--selector {v!r}: expected KEY=VALUE")
        out[key] = value
    return out


DESCRIPTION = (
    "Release a model version: update the ModelRelease manifest in the GitOps repository, "
    "validate it, verify the artifact against its TrustPolicy, and commit on a new branch ready "
    "for a pull request."
)


def register(sub: flags.Subparsers) -> None:
    summary = "commit a new model version to the GitOps repository on a new branch"
    p = flags.command(sub, "release", summary, DESCRIPTION, EPILOG)
    flags.release(p, "NAMESPACE/NAME", "the release stream, e.g. retail/detector")
    p.add_argument("--version", required=True, help="the version to release, e.g. 2.1.0")
    p.add_argument(
        "--uri",
        required=True,
        help="where gateways download the artifact (https://, oci://, file://)",
    )
    p.add_argument(
        "--digest", help="sha256:<hex> of the artifact; computed and checked when omitted"
    )
    p.add_argument(
        "--signature-uri", help="where the signature (model-signing / Sigstore bundle) is"
    )
    flags.words(p, "--attestation-uri", "URI", "an attestation's URI; repeatable")
    p.add_argument(
        "--artifact-file", type=Path, help="local copy of the artifact (else read from --uri)"
    )
    p.add_argument(
        "--signature-file",
        type=Path,
        help="local copy of the signature (else read from --signature-uri)",
    )
    flags.paths(
        p, "--attestation-file", "FILE", "local copy of an attestation, in --attestation-uri "
        "order; repeatable",
    )  # fmt: skip
    p.add_argument(
        "--policy-file",
        type=Path,
        help="TrustPolicy YAML to verify against (default: found in the repository)",
    )
    new = p.add_argument_group("for a release file that does not exist yet")
    new.add_argument("--model", help="spec.model (default: the release name)")
    new.add_argument("--trust-policy", help="spec.trustPolicy: the TrustPolicy name")
    flags.words(
        new, "--selector", "KEY=VALUE", "spec.gateways.selector.matchLabels entry; repeatable"
    )
    git = p.add_argument_group("git")
    flags.repo(git)
    git.add_argument(
        "--base", default="HEAD", help="commit or branch to start from (default: HEAD)"
    )
    flags.push(git, "branch to create (default: release/<namespace>/<name>/<version>)")
    flags.json_output(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ns, name = parse_release_ref(args.release)
    if ns is None:
        raise ConfigError(f"{args.release!r}: name the release as NAMESPACE/NAME")
    req = ReleaseRequest(
        ref=ReleaseRef(ns, name, args.releases_dir),
        version=args.version,
        uri=args.uri,
        digest=args.digest,
        signature_uri=args.signature_uri,
        attestation_uris=tuple(args.attestation_uri),
        artifact_file=args.artifact_file,
        signature_file=args.signature_file,
        attestation_files=tuple(args.attestation_file),
        model=args.model,
        trust_policy=args.trust_policy,
        selector=_labels(args.selector),
        policy_file=args.policy_file,
        base=args.base,
        branch=args.branch,
        push=args.push,
        remote=args.remote,
    )
    result = create_release(args.repo, req)
    if args.json:
        print(json.dumps({**result.__dict__, "ref": str(result.ref)}, indent=2))
        return 0
    print(f"release {result.ref}: {result.model} {result.version} ({result.digest})")
    print(f"  verified: {result.verified_by}")
    print(f"  commit:   {result.commit} on branch {result.branch}")
    if result.pushed:
        print(f"  pushed to {args.remote}: open a pull request from {result.branch}")
    else:
        print(f"  next: git push {args.remote} {result.branch}  (then open a pull request)")
    return 0

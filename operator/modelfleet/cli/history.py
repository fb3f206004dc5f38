"""``modelfleet history``: the versions of one release, from the Git log of its manifest, and
with ``--cluster`` what the cluster did with each (``status.history`` of the live release)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from modelfleet.cli import flags
from modelfleet.gitops.history import format_table, release_history, rollout_outcomes
from modelfleet.gitops.manifest import ReleaseRef, find_release_file
from modelfleet.gitops.repo import open_repo, top_level

SUMMARY = "list a release's versions from git log (commit, author, date, digest, signature)"
DESCRIPTION = "Show the version history of a release from the GitOps repository."
EPILOG = """\
Each line is a commit that changed the release's version or digest (commits that changed only
other fields, or other files, are left out), newest first, with git's verdict on its signature:
good, good with unknown validity, bad, expired, cannot be checked, or unsigned. SSH signatures
are checked against gpg.ssh.allowedSignersFile from your git config, or --allowed-signers.

With --cluster the live ModelRelease (read with your kubeconfig) adds, per version, its rollout
outcome (Succeeded, Aborted, Rejected, Superseded, Reverted, or the phase of the rollout now
running), when it ran, the reason, the verified signer and model digest, and which version
gateways run now [stable] or are being given [target]. Without --cluster, or when the cluster
cannot be read, the history is Git's alone and the command says so on stderr.

examples:
  modelfleet history retail/detector
  modelfleet history detector --json --limit 5
  modelfleet history detector --first-parent      # when each version landed on this branch
  modelfleet history retail/detector --cluster    # with rollout outcomes from the cluster
"""


def register(sub: flags.Subparsers) -> None:
    p = flags.command(sub, "history", SUMMARY, DESCRIPTION, EPILOG)
    flags.release(p)
    flags.repo(p)
    p.add_argument("--rev", default="HEAD", help="branch or commit to read from (default: HEAD)")
    p.add_argument("--limit", type=int, help="at most this many versions")
    p.add_argument(
        "--first-parent", action="store_true", help="attribute merged versions to the merge commit"
    )
    p.add_argument(
        "--allowed-signers", type=Path, help="SSH allowed-signers file for signature checks"
    )
    flags.json_output(p, "print JSON instead of a table")
    k = p.add_argument_group("cluster")
    k.add_argument(
        "--cluster", action="store_true",
        help="add each version's rollout outcome from the live ModelRelease's status.history",
    )  # fmt: skip
    flags.kube(k, namespace=None, context=True)
    p.set_defaults(func=run)


def _live_release(args: argparse.Namespace, ref: ReleaseRef) -> tuple[dict[str, Any] | None, str]:
    """The live ModelRelease, or ``None`` and why not (the history is then Git's alone)."""
    if not args.cluster:
        return None, "Git only (add --cluster for each version's rollout outcome)"
    from modelfleet.cli.status import Cluster
    from modelfleet.errors import ModelfleetError
    from modelfleet.kube import KubeClient, load_access

    async def read() -> tuple[dict[str, Any] | None, str]:
        async with KubeClient(load_access(args.kubeconfig, args.context)) as kube:
            cluster = Cluster(kube, ref.namespace)
            return await cluster.release(ref.name), f"cluster {cluster.server}"

    try:
        return asyncio.run(read())
    except ModelfleetError as exc:
        return None, f"Git only: {exc.diagnostics()}"


def run(args: argparse.Namespace) -> int:
    repo = open_repo(args.repo)
    ref = find_release_file(top_level(repo), args.release, base=args.releases_dir)
    entries = release_history(
        repo,
        ref,
        rev=args.rev,
        limit=args.limit,
        first_parent=args.first_parent,
        allowed_signers=args.allowed_signers,
    )
    live, source = _live_release(args, ref)
    outcomes = None if live is None else rollout_outcomes(entries, live)
    if live is None:
        print(f"modelfleet history: {source}", file=sys.stderr)
    if args.json:
        versions = [e.to_json() for e in entries]
        for doc, outcome in zip(versions, outcomes or [None] * len(versions), strict=True):
            doc["rollout"] = None if outcome is None else outcome.to_json()
        status = (live or {}).get("status") or {}
        cluster = {
            "read": live is not None,
            "note": source,
            "phase": status.get("phase"),
            "source": status.get("source"),
        }
        print(json.dumps({"release": str(ref), "cluster": cluster, "versions": versions}, indent=2))
    else:
        print(format_table(entries, outcomes))
    return 0

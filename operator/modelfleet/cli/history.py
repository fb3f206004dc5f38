"""``modelfleet history``: the versions of one release, from the Git log of its manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from modelfleet.gitops.history import format_table, release_history
from modelfleet.gitops.manifest import find_release_file
from modelfleet.gitops.repo import open_repo, top_level

EPILOG = """\
Each line is a commit that changed the release's version or digest (commits that changed only
other fields, or other files, are left out), newest first, with git's verdict on its signature:
good, good with unknown validity, bad, expired, cannot be checked, or unsigned. SSH signatures
are checked against gpg.ssh.allowedSignersFile from your git config, or --allowed-signers.

examples:
  modelfleet history retail/detector
  modelfleet history detector --json --limit 5
  modelfleet history detector --first-parent      # when each version landed on this branch
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "history",
        help="list a release's versions from git log (commit, author, date, digest, signature)",
        description="Show the version history of a release from the GitOps repository.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "release", metavar="RELEASE", help="NAMESPACE/NAME, NAME, or the release file's path"
    )
    p.add_argument(
        "--repo", type=Path, default=Path("."), help="the GitOps repository (default: .)"
    )
    p.add_argument(
        "--releases-dir",
        default="releases",
        metavar="DIR",
        help="folder of the release files in the repository (default: releases)",
    )
    p.add_argument("--rev", default="HEAD", help="branch or commit to read from (default: HEAD)")
    p.add_argument("--limit", type=int, help="at most this many versions")
    p.add_argument(
        "--first-parent", action="store_true", help="attribute merged versions to the merge commit"
    )
    p.add_argument(
        "--allowed-signers", type=Path, help="SSH allowed-signers file for signature checks"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


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
    if args.json:
        print(
            json.dumps({"release": str(ref), "versions": [e.to_json() for e in entries]}, indent=2)
        )
    else:
        print(format_table(entries))
    return 0

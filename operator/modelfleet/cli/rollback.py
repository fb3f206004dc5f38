"""``modelfleet rollback``: roll a release back by reverting the commit that set its version.

Thin: the work is :func:`modelfleet.gitops.rollback` (see that module for how merges, conflicts
and ``--to`` are handled).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import git

from modelfleet.cli import flags
from modelfleet.gitops.manifest import find_release_file
from modelfleet.gitops.repo import open_repo, top_level
from modelfleet.gitops.rollback import plan_rollback, rollback

SUMMARY = "roll a release back: git revert of the commit that set its version"
DESCRIPTION = "Roll a release back in the GitOps repository by reverting a commit."
EPILOG = """\
how:
  Without --to, the commit with which the current version landed on this branch is reverted
  (git revert). If it came through a merge, the commit on the merged branch that changed the
  version is reverted, so the rest of that pull request stays; a merge that itself chose the
  version (a resolved conflict) is reverted with mainline 1. With --to VERSION, the version
  before the last change is the same revert; an older version is restored from the commit that
  set it (its version, digest and URIs; rollout settings changed since are kept).

  Refuses on uncommitted changes. A revert that conflicts is aborted and the repository is left
  exactly as it was. The operator then re-verifies the old version against today's TrustPolicy
  and, with rollout.rollback: Immediate, returns every gateway to it at once.

examples:
  modelfleet rollback retail/detector
  modelfleet rollback detector --to 2.0.3 --branch rollback/detector --push
  modelfleet rollback retail/detector --dry-run
"""


def register(sub: flags.Subparsers) -> None:
    p = flags.command(sub, "rollback", SUMMARY, DESCRIPTION, EPILOG)
    flags.release(p)
    p.add_argument(
        "--to", metavar="VERSION", help="the version to return to (default: the previous one)"
    )
    flags.repo(p)
    flags.push(p, "commit on this new branch instead of the current one")
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be done, change nothing"
    )
    flags.json_output(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    repo = open_repo(args.repo)
    ref = find_release_file(top_level(repo), args.release, base=args.releases_dir)
    if args.dry_run:
        plan = plan_rollback(repo, ref, args.to)
        print(f"would {plan.describe()}")
        return 0
    result = rollback(
        Path(top_level(repo)),
        ref,
        to_version=args.to,
        branch=args.branch,
        push=args.push,
        remote=args.remote,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "release": str(ref),
                    "mode": result.plan.mode,
                    "from": result.plan.current_version,
                    "to": result.version,
                    "digest": result.digest,
                    "commit": result.commit,
                    "sourceCommit": result.plan.commit,
                    "branch": result.branch,
                    "alsoChanged": list(result.also_changed),
                    "pushed": result.pushed,
                },
                indent=2,
            )
        )
        return 0
    verb = "reverted" if result.plan.mode == "revert" else "restored the version of"
    print(
        f"rollback {ref}: {result.plan.current_version} -> {result.version} "
        f"({verb} {result.plan.commit[:12]})"
    )
    where = result.branch or _branch(git.Repo(top_level(repo)))
    print(f"  commit: {result.commit} on {where}")
    if result.also_changed:
        print(f"  also reverted: {', '.join(result.also_changed)}")
    if not result.pushed:
        print(f"  next: git push {args.remote} {where}")
    return 0


def _branch(repo: git.Repo) -> str:
    try:
        return str(repo.active_branch.name)
    except TypeError:
        return "HEAD (detached)"

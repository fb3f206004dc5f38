"""``modelfleet sync``: apply the manifests of a Git repository to the cluster, once or in a loop.

Thin: flags → :class:`~modelfleet.gitops.sync.SyncConfig`; the work is
:func:`modelfleet.gitops.sync.sync_once` / :func:`~modelfleet.gitops.sync.run_sync_loop`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from modelfleet.cli import flags
from modelfleet.errors import ConfigError, ModelfleetError
from modelfleet.gitops.apply import KubeApplier
from modelfleet.gitops.source import GitSource, SignaturePolicy
from modelfleet.gitops.sync import SyncConfig, SyncResult, run_sync_loop, sync_once
from modelfleet.kube import KubeClient, load_access

SUMMARY = "apply a Git repository's manifests to the cluster (built-in GitOps sync)"
DESCRIPTION = "Sync manifests from a Git repository into the cluster with server-side apply."
EPILOG = """\
For clusters without Argo CD. Each pass fetches REF from REPO (file://, https://, ssh://) into
--cache-dir, reads every YAML/JSON object under --path, checks the whole commit, and only then
applies it with server-side apply (field manager modelfleet-sync), in Argo CD sync-wave order.

What a commit may hold: ModelReleases and EdgeGateways (TrustPolicies only with
--allow-trust-policies), in the namespace --namespace (more with --allow-namespace). Any other
kind or namespace refuses the whole commit, naming the file, kind and name; nothing is applied.

Ownership: an object the sync creates is annotated modelfleet.dev/sync-owner=<name>/<uid> with
the uid the API server gave it. An object that already exists but was not created by this sync
(made by hand, or by another sync) is refused unless --adopt; labels or annotations copied onto
an object do not make it the sync's. --prune deletes only objects this sync owns that are gone
from Git (never those annotated argocd.argoproj.io/sync-options: Prune=false, never on an empty
path).

--require-signed: every commit since the last applied revision (first-parent line and merged
branches alike, git rev-list LAST..TIP) must be signed by an allowed key: SSH signatures checked
against --allowed-signers (git's allowed-signers format), GPG signatures against --gpg-home,
optionally restricted to --allowed-gpg-key fingerprints. On the first sync (or with a new
--cache-dir) the whole history is checked, back to --trust-from REV if given. A refused or
failed pass applies nothing; in loop mode (--interval) the next pass tries again.

Each object is stamped with the label modelfleet.dev/sync=<name> and the annotations
modelfleet.dev/git-repo, modelfleet.dev/git-path and modelfleet.dev/git-revision (the last
commit that changed its file), which the operator copies into ModelRelease status.source.

examples:
  modelfleet sync https://git.example.com/acme/fleet-config.git --ref main --path releases \\
      --namespace retail
  modelfleet sync git@git.example.com:acme/fleet.git --ssh-key ~/.ssh/deploy --interval 60 \\
      --namespace retail --allow-namespace stores --prune \\
      --require-signed --allowed-signers ./allowed_signers --trust-from 4b825dc6
"""


def register(sub: flags.Subparsers) -> None:
    p = flags.command(sub, "sync", SUMMARY, DESCRIPTION, EPILOG)
    p.add_argument("repo", metavar="REPO", help="repository URL or local path")
    p.add_argument("--ref", default="HEAD", help="branch, tag or commit (default: the remote HEAD)")
    p.add_argument("--path", default=".", help="folder (or file) of manifests in the repository")
    p.add_argument("--name", default="default", help="this sync's name (modelfleet.dev/sync label)")
    flags.words(
        p, "--allow-namespace", "NS", "another namespace objects may be applied to (besides "
        "--namespace); repeatable",
    )  # fmt: skip
    p.add_argument(
        "--allow-trust-policies",
        action="store_true",
        help="also apply TrustPolicies (cluster-scoped: who may sign models everywhere)",
    )
    p.add_argument(
        "--adopt",
        action="store_true",
        help="take over objects that exist but were not created by this sync",
    )
    p.add_argument(
        "--prune", action="store_true", help="delete this sync's objects that are gone from Git"
    )
    p.add_argument("--allow-empty", action="store_true", help="allow a path without manifests")
    p.add_argument(
        "--dry-run", action="store_true", help="server-side dry run: validate, change nothing"
    )
    p.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        help="sync repeatedly, this often (default: once)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("~/.cache/modelfleet/sync").expanduser(),
        help="where fetched repositories are kept",
    )
    p.add_argument("--ssh-key", type=Path, help="private key for ssh:// and scp-like URLs")
    sig = p.add_argument_group("signed commits")
    sig.add_argument(
        "--require-signed", action="store_true", help="refuse commits not signed by an allowed key"
    )
    sig.add_argument("--allowed-signers", type=Path, help="SSH allowed-signers file (git's format)")
    sig.add_argument("--gpg-home", type=Path, help="GnuPG home with the allowed public keys")
    flags.words(
        sig, "--allowed-gpg-key", "FINGERPRINT", "accept this GPG key even if not certified in "
        "the keyring; repeatable",
    )  # fmt: skip
    sig.add_argument(
        "--trust-from",
        metavar="REV",
        help="a commit trusted without checking: only commits after it need signatures "
        "(needed on the first sync of a history with unsigned commits)",
    )
    kube = p.add_argument_group("cluster")
    flags.kube(
        kube, "namespace for objects that name none, and allowed (default: default)",
        context=True, short=False,
    )  # fmt: skip
    p.set_defaults(namespace="default")
    flags.json_output(p, "print each result as a JSON line")
    p.set_defaults(func=run)


def _print(result: SyncResult | ModelfleetError, as_json: bool) -> None:
    if isinstance(result, ModelfleetError):
        if as_json:
            print(json.dumps({"error": result.diagnostics()}), flush=True)
        return  # logged by the loop
    if as_json:
        print(json.dumps(result.to_json()), flush=True)
        return
    dry = " (dry run)" if result.dry_run else ""
    print(
        f"synced {result.revision[:12]}{dry}: {len(result.applied)} applied, "
        f"{len(result.pruned)} pruned",
        flush=True,
    )
    for ref in result.adopted:
        print(f"  adopted {ref}", flush=True)
    for ref in result.pruned:
        print(f"  pruned {ref}", flush=True)


def run(args: argparse.Namespace) -> int:
    repo = args.repo
    if "://" not in repo and ":" not in repo.split("/")[0] and Path(repo).exists():
        repo = Path(repo).resolve().as_uri()
    signatures = None
    if args.trust_from and not args.require_signed:
        raise ConfigError("--trust-from only makes sense with --require-signed")
    if args.require_signed:
        signatures = SignaturePolicy(
            allowed_signers=args.allowed_signers,
            gpg_home=args.gpg_home,
            allowed_gpg_keys=tuple(args.allowed_gpg_key),
        )
    config = SyncConfig(
        source=GitSource(repo, args.ref, args.path, args.ssh_key),
        cache_dir=args.cache_dir,
        name=args.name,
        namespace=args.namespace,
        prune=args.prune,
        allow_empty=args.allow_empty,
        signatures=signatures,
        dry_run=args.dry_run,
        namespaces=tuple(args.allow_namespace),
        allow_trust_policies=args.allow_trust_policies,
        adopt=args.adopt,
        trust_from=args.trust_from,
    )
    return asyncio.run(_sync(config, args))


async def _sync(config: SyncConfig, args: argparse.Namespace) -> int:
    async with KubeClient(load_access(args.kubeconfig, args.context)) as kube:
        applier = KubeApplier(kube)
        if args.interval is None:
            _print(await sync_once(config, applier), args.json)
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        state = await run_sync_loop(
            config,
            applier,
            interval=args.interval,
            stop=stop,
            on_result=lambda r: _print(r, args.json),
        )
        return 0 if state.last is not None or state.passes == 0 else 1

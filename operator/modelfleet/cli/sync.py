"""``modelfleet sync``: apply the manifests of a Git repository to the cluster, once or in a loop.

Thin: flags → :class:`~modelfleet.gitops.sync.SyncConfig`; the work is
:func:`modelfleet.gitops.sync.sync_once` / :func:`~modelfleet.gitops.sync.run_sync_loop`.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from modelfleet.errors import ModelfleetError
from modelfleet.gitops.apply import KubernetesApplier, api_client
from modelfleet.gitops.source import GitSource, SignaturePolicy
from modelfleet.gitops.sync import SyncConfig, SyncResult, run_sync_loop, sync_once

EPILOG = """\
For clusters without Argo CD. Each pass fetches REF from REPO (file://, https://, ssh://) into
--cache-dir, reads every YAML/JSON object under --path, and applies them with server-side apply
(field manager modelfleet-sync), in Argo CD sync-wave order (TrustPolicy before ModelRelease).
Each object is stamped with the label modelfleet.dev/sync=<name> and the annotations
modelfleet.dev/git-repo, modelfleet.dev/git-path and modelfleet.dev/git-revision (the last
commit that changed its file), which the operator copies into ModelRelease status.source.

--prune deletes objects carrying this sync's label and repository that are gone from Git
(never those annotated argocd.argoproj.io/sync-options: Prune=false, never on an empty path).
--require-signed refuses a commit not signed by an allowed key: SSH signatures checked against
--allowed-signers (git's allowed-signers format), GPG signatures against --gpg-home, optionally
restricted to --allowed-gpg-key fingerprints. A refused or failed pass applies nothing; in loop
mode (--interval) the next pass tries again.

examples:
  modelfleet sync https://git.example.com/acme/fleet-config.git --ref main --path releases
  modelfleet sync git@git.example.com:acme/fleet.git --ssh-key ~/.ssh/deploy --interval 60 \\
      --prune --require-signed --allowed-signers ./allowed_signers
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sync",
        help="apply a Git repository's manifests to the cluster (built-in GitOps sync)",
        description="Sync manifests from a Git repository into the cluster with server-side apply.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("repo", metavar="REPO", help="repository URL or local path")
    p.add_argument("--ref", default="HEAD", help="branch, tag or commit (default: the remote HEAD)")
    p.add_argument("--path", default=".", help="folder (or file) of manifests in the repository")
    p.add_argument(
        "--name", default="default", help="this sync's name, in the modelfleet.dev/sync label"
    )
    p.add_argument(
        "--namespace", default="default", help="namespace for namespaced objects that name none"
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
    sig.add_argument(
        "--allowed-gpg-key",
        action="append",
        default=[],
        metavar="FINGERPRINT",
        help="accept this GPG key even if not certified in the keyring; repeatable",
    )
    kube = p.add_argument_group("cluster")
    kube.add_argument(
        "--kubeconfig",
        type=Path,
        help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)",
    )
    kube.add_argument("--context", help="kubeconfig context")
    p.add_argument("--json", action="store_true", help="print each result as a JSON line")
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
    for ref in result.pruned:
        print(f"  pruned {ref}", flush=True)


def run(args: argparse.Namespace) -> int:
    repo = args.repo
    if "://" not in repo and ":" not in repo.split("/")[0] and Path(repo).exists():
        repo = Path(repo).resolve().as_uri()
    signatures = None
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
    )
    applier = KubernetesApplier(api_client(args.kubeconfig, args.context))
    if args.interval is None:
        _print(sync_once(config, applier), args.json)
        return 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    state = run_sync_loop(
        config,
        applier,
        interval=args.interval,
        stop=stop,
        on_result=lambda r: _print(r, args.json),
    )
    return 0 if state.last is not None or state.passes == 0 else 1

"""``modelfleet operator``: run the kopf operator that verifies and rolls out ModelReleases."""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from pathlib import Path

from modelfleet.cli import flags
from modelfleet.errors import ConfigError


def _run(args: argparse.Namespace) -> int:
    from modelfleet.controller import OperatorOptions, run
    from modelfleet.controller.verifier import VerifierSettings
    from modelfleet.core.gates import Tuning
    from modelfleet.fetch import FetchLimits, FetchPolicy

    if args.all_namespaces and args.namespace:
        raise ConfigError("--namespace and --all-namespaces exclude each other")
    if not args.all_namespaces and not args.namespace:
        raise ConfigError("say which namespaces to watch: --namespace NS (repeatable) or "
                          "--all-namespaces")  # fmt: skip
    for root in args.allow_file_root:
        if Path(root).exists() and not Path(root).is_dir():  # it may be created later
            raise ConfigError(f"--allow-file-root {root}: not a folder")
    plain = args.plain_http_registry
    try:
        policy = FetchPolicy.build(
            schemes=args.allow_scheme,
            hosts=args.allow_host,
            file_roots=args.allow_file_root,
            max_redirects=args.max_redirects,
            plain_http_registries=None if plain is None else [h for h in plain if h != "none"],
        )
    except ValueError as exc:
        raise ConfigError(f"artifact sources: {exc}") from None
    verifier = VerifierSettings(
        limits=FetchLimits(
            max_artifact_bytes=args.max_artifact_bytes,
            timeout=args.verify_timeout,
            ca_file=args.artifact_ca,
        ),
        fetch_policy=policy,
        timeout=args.verify_timeout,
        material_namespace=args.material_namespace,
    )
    from modelfleet.api.policy import parse_checklist_items

    lease = None
    if args.leader_elect:
        from modelfleet.controller.leader import LeaseSettings

        lease = LeaseSettings(
            name=args.lease_name, namespace=args.lease_namespace, duration=args.lease_duration
        )
    return run(
        flags.options(
            OperatorOptions,
            args,
            lease=lease,
            tuning=Tuning(report_interval=timedelta(seconds=args.report_interval)),
            namespaces=tuple(args.namespace),
            verifier=verifier,
            prometheus_url=_prometheus_url(args.prometheus_url),
            release_checklist=parse_checklist_items(
                args.release_checklist.split(","), field="--release-checklist"
            ),
        )
    )


def _prometheus_url(url: str | None) -> str | None:
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"--prometheus-url {url!r} must start with http:// or https://")
    return url


DESCRIPTION = (
    "Watches ModelReleases, EdgeGateways and TrustPolicies (modelfleet.dev/v1alpha1). A new spec "
    "is verified first (artifact, signature and attestations fetched from their https:// or "
    "oci:// URIs on allowed hosts, checked against the named TrustPolicy); only a verified "
    "version becomes status.target. A timer per release then evaluates the health gates on the "
    "gateways told the target, promotes a step after its bake, pauses on silence and aborts on "
    "evidence of harm. Progress lives in status only: the operator can be killed and restarted "
    "at any time. It writes ModelRelease status and Events, never a spec, and adds no "
    "finalizers. With --leader-elect, several replicas may run: only the holder of a "
    "coordination.k8s.io Lease acts; the others stand by."
)
SOURCES = (
    "A ModelRelease names the URIs the operator fetches; these allow-lists bound them. Every URI "
    "and every redirect hop must pass; a refused one rejects the release, naming the check."
)
REPLICAS = (
    "With --leader-elect only the holder of a Lease runs handlers and writes; the others wait, "
    "serving liveness and metrics. The holder renews every third of the duration; a standby "
    "takes over when it expires (SIGKILL) or at once when released (SIGTERM)."
)
POD_NAMESPACE = os.environ.get("POD_NAMESPACE", "modelfleet-system")

ROLLOUT = (
    ("--interval", 5.0, "how often each release's gates and timers are evaluated; a regression "
     "is acted on within one interval of its evidence"),
    ("--status-refresh", 10.0, "write changes of measured values only (cohort counts, gate "
     "figures) at most this often; decisions (phase, step, timestamps) are always written at once"),
    ("--report-interval", 60.0, "the gateways' health report period (agent reportInterval); a "
     "freshly converged step waits two of these for its first health reports (Progressing, "
     "reason WaitingForReports) before missing evidence holds it as Inconclusive"),
)  # fmt: skip


def _watch_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to watch")
    g.add_argument(
        "-n", "--namespace", action="append", default=[], metavar="NS",
        help="watch this namespace (repeat for several; globs like team-* work)",
    )  # fmt: skip
    g.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    flags.kube(g, namespace=None)
    flags.seconds(p.add_argument_group("rollout"), ROLLOUT)


def _verification_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("verification")
    flags.seconds(
        g,
        [
            (
                "--verify-timeout",
                300.0,
                "give up one verification attempt (fetch + "
                "checks) after this long; the release stays Verifying and is tried again",
            )
        ],
    )
    g.add_argument(
        "--max-artifact-bytes",
        type=flags.byte_size,
        default=8 * flags.GIB,
        metavar="SIZE",
        help="refuse artifacts larger than this (e.g. 512M, 8G); signatures and attestations "
        "are capped at 16M",
    )
    g = p.add_argument_group("artifact sources", SOURCES)
    flags.words(
        g,
        "--allow-host",
        "HOST[:PORT]",
        "fetch artifacts, signatures and attestations "
        "from this host (repeatable; *.example.com for subdomains, * for any host). "
        "Default: none, so every https:// and oci:// URI is refused until hosts are allowed",
    )
    g.add_argument(
        "--allow-scheme",
        action="append",
        default=[],
        choices=("http",),
        help="also allow plain http:// (https:// and oci:// are always allowed)",
    )
    flags.words(
        g,
        "--allow-file-root",
        "DIR",
        "allow file:// URIs under this folder (repeatable; "
        "symbolic links are resolved first). Default: none, file:// is refused. For "
        "development and tests only",
    )
    g.add_argument(
        "--max-redirects",
        type=int,
        default=5,
        metavar="N",
        help="follow at most this many redirects (each to the same scheme and an allowed host)",
    )
    g.add_argument(
        "--plain-http-registry",
        action="append",
        default=None,
        metavar="HOST[:PORT]",
        help="speak plain HTTP to this OCI registry (repeatable; 'none' for no "
        "registry). Default: localhost, 127.0.0.1 and ::1, as container tools do",
    )
    g.add_argument(
        "--artifact-ca",
        default=None,
        metavar="PEM",
        help="extra CA bundle trusted for https:// and oci:// artifact servers",
    )
    g.add_argument(
        "--material-namespace",
        default=POD_NAMESPACE,
        metavar="NS",
        help="namespace of Secrets/ConfigMaps a TrustPolicy references without one",
    )
    g.add_argument(
        "--argocd-namespace",
        default="argocd",
        metavar="NS",
        help="where Argo CD Applications live (for status.source of Argo CD-tracked releases)",
    )


def _replica_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("replicas", REPLICAS)
    g.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="elect a leader with a coordination.k8s.io/v1 Lease (the deployed form "
        "runs two replicas with it); off: act at once, as the only replica",
    )
    g.add_argument(
        "--lease-name", default="modelfleet-operator", metavar="NAME", help="the Lease's name"
    )
    g.add_argument(
        "--lease-namespace", default=POD_NAMESPACE, metavar="NS", help="the Lease's namespace"
    )
    flags.seconds(
        g,
        [
            (
                "--lease-duration",
                15.0,
                "how long a lease not renewed stays the holder's (leaseDurationSeconds)",
            )
        ],
    )


def _observability_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("observability")
    g.add_argument(
        "--liveness",
        default=None,
        metavar="URL",
        help="serve /healthz (and the path "
        "given) and /readyz here, e.g. http://0.0.0.0:8080/healthz (port 0: a free port, "
        "logged as 'probes on http://HOST:PORT'; an address in use stops the operator)",
    )
    flags.metrics(g, "0.0.0.0", "API writes, reconciles, verifications")
    g.add_argument(
        "--prometheus-url",
        default=None,
        metavar="URL",
        help="Prometheus that spec.rollout.gates.prometheus queries run against, e.g. "
        "http://prometheus.monitoring:9090 (without it, query gates have no data: "
        "Inconclusive)",
    )
    g.add_argument(
        "--release-checklist", default="", metavar="ITEMS",
        help="release checklist items required before a release goes live, for TrustPolicies "
        "without spec.releaseChecklist: comma-separated Signed, Provenance, RollbackTarget, "
        "Telemetry, Owner (default: none)",
    )  # fmt: skip
    flags.log_format(g, "release, version and commit fields")


def register(sub: flags.Subparsers) -> None:
    p = sub.add_parser(
        "operator",
        help="run the operator: verify ModelReleases and roll them out in cohorts behind gates",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description=DESCRIPTION,
    )
    for add in (_watch_flags, _verification_flags, _replica_flags, _observability_flags):
        add(p)
    p.set_defaults(func=_run)

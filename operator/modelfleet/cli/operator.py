"""``modelfleet operator``: run the kopf operator that verifies and rolls out ModelReleases."""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from pathlib import Path

from modelfleet.errors import ConfigError

GIB = 1024**3


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _bytes(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": GIB, "t": 1024**4}
    raw = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = units.get(raw[-1:], 1)
    number = raw[:-1] if raw[-1:] in units else raw
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 512M or 8G") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


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
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        raise ConfigError(f"--kubeconfig {args.kubeconfig}: no such file")
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
        OperatorOptions(
            lease=lease,
            tuning=Tuning(report_interval=timedelta(seconds=args.report_interval)),
            namespaces=tuple(args.namespace),
            all_namespaces=args.all_namespaces,
            interval=args.interval,
            status_refresh=args.status_refresh,
            kubeconfig=args.kubeconfig,
            verifier=verifier,
            liveness=args.liveness,
            metrics_host=args.metrics_host,
            metrics_port=args.metrics_port,
            log_format=args.log_format,
            verbose=args.verbose,
            argocd_namespace=args.argocd_namespace,
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "operator",
        help="run the operator: verify ModelReleases and roll them out in cohorts behind gates",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description=(
            "Watches ModelReleases, EdgeGateways and TrustPolicies (modelfleet.dev/v1alpha1). A "
            "new spec is verified first (artifact, signature and attestations fetched from their "
            "https:// or oci:// URIs on allowed hosts, checked against the named TrustPolicy); "
            "only a "
            "verified version becomes status.target. A timer per release then evaluates the "
            "health gates on the gateways told the target, promotes a step after its bake, pauses "
            "on silence and aborts on evidence of harm. Progress lives in status only: the "
            "operator can be killed and restarted at any time. It writes ModelRelease status and "
            "Events, never a spec, and adds no finalizers. With --leader-elect, several replicas "
            "may run: only the holder of a coordination.k8s.io Lease acts; the others stand by."
        ),
    )
    g = p.add_argument_group("what to watch")
    g.add_argument(
        "-n", "--namespace", action="append", default=[], metavar="NS",
        help="watch this namespace (repeat for several; globs like team-* work)",
    )  # fmt: skip
    g.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    g.add_argument(
        "--kubeconfig", type=Path, default=None,
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, else the in-cluster "
        "service account)",
    )  # fmt: skip
    g = p.add_argument_group("rollout")
    g.add_argument(
        "--interval", type=_positive, default=5.0, metavar="SECONDS",
        help="how often each release's gates and timers are evaluated; a regression is acted "
        "on within one interval of its evidence",
    )  # fmt: skip
    g.add_argument(
        "--status-refresh", type=_positive, default=10.0, metavar="SECONDS",
        help="write changes of measured values only (cohort counts, gate figures) at most this "
        "often; decisions (phase, step, timestamps) are always written at once",
    )  # fmt: skip
    g.add_argument(
        "--report-interval", type=_positive, default=60.0, metavar="SECONDS",
        help="the gateways' health report period (agent reportInterval); a freshly converged "
        "step waits two of these for its first health reports (Progressing, reason "
        "WaitingForReports) before missing evidence holds it as Inconclusive",
    )  # fmt: skip
    g = p.add_argument_group("verification")
    g.add_argument(
        "--verify-timeout", type=_positive, default=300.0, metavar="SECONDS",
        help="give up one verification attempt (fetch + checks) after this long; the release "
        "stays Verifying and is tried again",
    )  # fmt: skip
    g.add_argument(
        "--max-artifact-bytes", type=_bytes, default=8 * GIB, metavar="SIZE",
        help="refuse artifacts larger than this (e.g. 512M, 8G); signatures and attestations "
        "are capped at 16M",
    )  # fmt: skip
    g = p.add_argument_group(
        "artifact sources",
        "A ModelRelease names the URIs the operator fetches; these allow-lists bound them. Every "
        "URI and every redirect hop must pass; a refused one rejects the release, naming the "
        "check.",
    )
    g.add_argument(
        "--allow-host", action="append", default=[], metavar="HOST[:PORT]",
        help="fetch artifacts, signatures and attestations from this host (repeatable; "
        "*.example.com for subdomains, * for any host). Default: none, so every https:// and "
        "oci:// URI is refused until hosts are allowed",
    )  # fmt: skip
    g.add_argument(
        "--allow-scheme", action="append", default=[], choices=("http",),
        help="also allow plain http:// (https:// and oci:// are always allowed)",
    )  # fmt: skip
    g.add_argument(
        "--allow-file-root", action="append", default=[], metavar="DIR",
        help="allow file:// URIs under this folder (repeatable; symbolic links are resolved "
        "first). Default: none, file:// is refused. For development and tests only",
    )  # fmt: skip
    g.add_argument(
        "--max-redirects", type=int, default=5, metavar="N",
        help="follow at most this many redirects (each to the same scheme and an allowed host)",
    )  # fmt: skip
    g.add_argument(
        "--plain-http-registry", action="append", default=None, metavar="HOST[:PORT]",
        help="speak plain HTTP to this OCI registry (repeatable; 'none' for no registry). "
        "Default: localhost, 127.0.0.1 and ::1, as container tools do",
    )  # fmt: skip
    g.add_argument(
        "--artifact-ca", default=None, metavar="PEM",
        help="extra CA bundle trusted for https:// and oci:// artifact servers",
    )  # fmt: skip
    g.add_argument(
        "--material-namespace",
        default=os.environ.get("POD_NAMESPACE", "modelfleet-system"),
        metavar="NS",
        help="namespace of Secrets/ConfigMaps a TrustPolicy references without one",
    )
    g.add_argument(
        "--argocd-namespace", default="argocd", metavar="NS",
        help="where Argo CD Applications live (for status.source of Argo CD-tracked releases)",
    )  # fmt: skip
    g = p.add_argument_group(
        "replicas",
        "With --leader-elect only the holder of a Lease runs handlers and writes; the others "
        "wait, serving liveness and metrics. The holder renews every third of the duration; a "
        "standby takes over when it expires (SIGKILL) or at once when released (SIGTERM).",
    )
    g.add_argument(
        "--leader-elect", action=argparse.BooleanOptionalAction, default=False,
        help="elect a leader with a coordination.k8s.io/v1 Lease (the deployed form runs two "
        "replicas with it); off: act at once, as the only replica",
    )  # fmt: skip
    g.add_argument("--lease-name", default="modelfleet-operator", metavar="NAME",
                   help="the Lease's name")  # fmt: skip
    g.add_argument(
        "--lease-namespace", default=os.environ.get("POD_NAMESPACE", "modelfleet-system"),
        metavar="NS", help="the Lease's namespace",
    )  # fmt: skip
    g.add_argument(
        "--lease-duration", type=_positive, default=15.0, metavar="SECONDS",
        help="how long a lease not renewed stays the holder's (leaseDurationSeconds)",
    )  # fmt: skip
    g = p.add_argument_group("observability")
    g.add_argument(
        "--liveness", default=None, metavar="URL",
        help="serve /healthz (and the path given) and /readyz here, e.g. http://0.0.0.0:8080/healthz",
    )  # fmt: skip
    g.add_argument(
        "--metrics-port", type=int, default=0, metavar="PORT",
        help="serve Prometheus metrics (API writes, reconciles, verifications) on this port; "
        "0 = off",
    )  # fmt: skip
    g.add_argument("--metrics-host", default="0.0.0.0", help="address for --metrics-port")
    g.add_argument(
        "--prometheus-url", default=None, metavar="URL",
        help="Prometheus that spec.rollout.gates.prometheus queries run against, e.g. "
        "http://prometheus.monitoring:9090 (without it, query gates have no data: Inconclusive)",
    )  # fmt: skip
    g.add_argument(
        "--release-checklist", default="", metavar="ITEMS",
        help="release checklist items required before a release goes live, for TrustPolicies "
        "without spec.releaseChecklist: comma-separated Signed, Provenance, RollbackTarget, "
        "Telemetry, Owner (default: none)",
    )  # fmt: skip
    g.add_argument(
        "--log-format", choices=("text", "json"), default="text",
        help="json: one JSON object per line with release, version and commit fields, for log "
        "collectors (see docs/status.md)",
    )  # fmt: skip
    p.set_defaults(func=_run)

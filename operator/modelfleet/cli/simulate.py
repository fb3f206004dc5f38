"""``modelfleet simulate``: run N gateway agents in one process against a real fleet API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from modelfleet.agent.command import add_metrics_options
from modelfleet.cli import flags
from modelfleet.errors import ConfigError

if TYPE_CHECKING:
    from modelfleet.agent.config import AgentConfig
    from modelfleet.agent.simulator import SimulationOptions
    from modelfleet.kube import KubeClient

DESCRIPTION = textwrap.dedent(
    """\
    Run N gateway agents in this process, through the same agent code as 'modelfleet agent':
    each with its own data dir and client certificate, polling the real fleet API over mTLS,
    downloading and verifying real signed artifacts against its own trust policy, switching
    slots and reporting. Only the inference server is simulated: per-version behaviour
    (activation failures, error rate, latency, drift, going offline) comes from --behaviour.

    Gateways come either from real enrollment (--gateways N with --kubeconfig/--namespace:
    creates EdgeGateways sim-0000.. and writes their bundles under --workdir), or from
    pre-made bundles (--bundles DIR: one sub-folder per gateway holding agent.yaml).

    --behaviour FILE maps versions to behaviour; "*" is the default:
      "*":     {errorRate: 0.002, latencyMs: {p50: 20, p95: 45}, driftScore: 0.05}
      "2.1.0": {activationFailureRate: 0.05, errorRate: 0.08, latencyMs: {p50: 35, p95: 260},
                driftScore: 0.45, offlineFraction: 0.02, requestsPerSecond: 5,
                activationSeconds: 1}

    Progress (gateways per model, version and state) is printed every --progress seconds.
    """
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary = "run N simulated gateways (the real agent code) against the fleet API"
    p = flags.command(sub, "simulate", summary, DESCRIPTION)
    src = p.add_argument_group("where the gateways come from")
    src.add_argument(
        "--bundles", type=Path, metavar="DIR", help="pre-made bundles: DIR/*/agent.yaml"
    )
    src.add_argument("--gateways", type=int, metavar="N", help="enroll N gateways for real")
    src.add_argument(
        "--prefix", metavar="PREFIX", default="sim", help="gateway name prefix (default: sim)"
    )
    src.add_argument(
        "--labels",
        metavar="K=V,...",
        default="",
        help="labels for every enrolled gateway: k=v,k2=v2",
    )
    src.add_argument(
        "--label-split",
        action="append",
        default=[],
        metavar="K=V:FRACTION",
        help="add label K=V to that share of the gateways (repeatable), e.g. ring=early:0.1",
    )
    flags.kube(src, "namespace of the EdgeGateways (default: kubeconfig's)")
    src.add_argument(
        "--ca-namespace",
        metavar="NS",
        help="namespace of the fleet CA Secret (default: --namespace)",
    )
    src.add_argument(
        "--fleet-url",
        metavar="URL",
        default="https://localhost:8443",
        help="fleet API URL written into bundles",
    )
    src.add_argument(
        "--trust-policy", metavar="FILE", type=Path, help="TrustPolicy file every agent enforces"
    )
    src.add_argument(
        "--workdir", metavar="DIR", type=Path, default=Path("simulated-gateways"),
        help="where enrolled bundles and data dirs go (default: ./simulated-gateways)",
    )  # fmt: skip
    run = p.add_argument_group("behaviour and timing")
    run.add_argument("--behaviour", type=Path, metavar="FILE", help="YAML: version -> behaviour")
    run.add_argument(
        "--offline-fraction",
        metavar="SHARE",
        type=float,
        default=0.0,
        help="share of gateways offline throughout",
    )
    run.add_argument(
        "--seed", metavar="N", type=int, default=0, help="seed of every random choice (default 0)"
    )
    run.add_argument(
        "--poll-interval",
        metavar="SECONDS",
        type=float,
        help="override each agent's pollInterval (s)",
    )
    run.add_argument(
        "--report-interval",
        metavar="SECONDS",
        type=float,
        help="override each agent's reportInterval (s)",
    )
    run.add_argument(
        "--window",
        metavar="SECONDS",
        type=float,
        default=15.0,
        help="health window in seconds (default 15)",
    )
    run.add_argument(
        "--long-poll", metavar="SECONDS", type=float, help="long-poll the fleet API up to SECONDS"
    )
    run.add_argument(
        "--ramp",
        metavar="SECONDS",
        type=float,
        default=0.0,
        help="spread agent starts over SECONDS",
    )
    run.add_argument(
        "--duration",
        metavar="SECONDS",
        type=float,
        help="stop after SECONDS (default: until Ctrl-C)",
    )
    run.add_argument(
        "--progress",
        metavar="SECONDS",
        type=float,
        default=5.0,
        help="print progress every SECONDS",
    )
    run.add_argument(
        "--no-shared-verification", action="store_true",
        help="verify every artifact fully in every agent (no shared verified-digest cache)",
    )  # fmt: skip
    run.add_argument(
        "--fsync",
        action="store_true",
        help="fsync state, markers and slots like a real gateway (slow for many gateways)",
    )
    add_metrics_options(run, "the simulated agents'")
    p.set_defaults(func=handle)


def _splits(values: list[str]) -> list[tuple[str, str, float]]:
    out = []
    for raw in values:
        label, _, fraction = raw.rpartition(":")
        key, sep, value = label.partition("=")
        try:
            share = float(fraction)
        except ValueError:
            share = -1.0
        if not sep or not key or not 0 <= share <= 1:
            raise ConfigError(f"--label-split {raw!r}: expected KEY=VALUE:FRACTION (0..1)")
        out.append((key, value, share))
    return out


async def enroll_simulated(
    kube: KubeClient,
    count: int,
    *,
    namespace: str,
    out_dir: Path,
    fleet_url: str,
    trust_policy: bytes,
    prefix: str = "sim",
    labels: Mapping[str, str] | None = None,
    label_splits: Sequence[tuple[str, str, float]] = (),
    ca_namespace: str | None = None,
    seed: int = 0,
) -> list[AgentConfig]:
    """Enroll ``count`` gateways for real (EdgeGateway + client certificate each) and write
    their bundles under ``out_dir/<name>``. ``label_splits`` adds ``key=value`` to the share
    of gateways given by the fraction (e.g. ``("ring", "early", 0.1)``). Here, not in the agent
    package: enrollment needs the Kubernetes client, which the ``agent`` extra does not bring."""
    from modelfleet.agent.behaviour import draw
    from modelfleet.agent.config import load_agent_config
    from modelfleet.enrollment import enroll_gateways, gateway_names
    from modelfleet.fleet.secrets import FleetSecrets

    ca = await FleetSecrets(kube, ca_namespace or namespace).fleet_ca()
    wanted = []
    for name in gateway_names(prefix, count):
        gw_labels = dict(labels or {})
        for key, value, fraction in label_splits:
            if draw(seed, "label", key, name) < fraction:
                gw_labels[key] = value
        wanted.append((name, gw_labels))
    bundles = await enroll_gateways(
        kube,
        wanted,
        namespace=namespace,
        ca=ca,
        fleet_url=fleet_url,
        trust_policy=trust_policy,
        renew=True,
    )
    return [load_agent_config(b.write(out_dir / b.gateway)) for b in bundles]


def handle(args: argparse.Namespace) -> int:
    from modelfleet.agent.behaviour import BehaviourTable, load_behaviour
    from modelfleet.agent.simulator import SimulationOptions, load_bundles

    if (args.bundles is None) == (args.gateways is None):
        raise ConfigError("give exactly one of --bundles DIR or --gateways N")
    if args.gateways is not None:
        if args.gateways < 1:
            raise ConfigError("--gateways must be at least 1")
        if args.trust_policy is None:
            raise ConfigError("--gateways needs --trust-policy FILE (the policy agents enforce)")
        from modelfleet.enrollment import parse_labels
        from modelfleet.kube import KubeClient, load_access

        access = load_access(args.kubeconfig)
        namespace = args.namespace or access.namespace

        async def enroll() -> list[AgentConfig]:
            async with KubeClient(access) as kube:
                return await enroll_simulated(
                    kube,
                    args.gateways,
                    namespace=namespace,
                    out_dir=args.workdir,
                    fleet_url=args.fleet_url,
                    trust_policy=args.trust_policy.read_bytes(),
                    prefix=args.prefix,
                    labels=parse_labels(args.labels),
                    label_splits=_splits(args.label_split),
                    ca_namespace=args.ca_namespace,
                    seed=args.seed,
                )

        configs = asyncio.run(enroll())
        print(f"enrolled {len(configs)} gateways in {namespace}; bundles under {args.workdir}/")
    else:
        configs = load_bundles(args.bundles)
    options = SimulationOptions(
        behaviour=load_behaviour(args.behaviour) if args.behaviour else BehaviourTable(),
        seed=args.seed,
        offline_fraction=args.offline_fraction,
        poll_interval=args.poll_interval,
        report_interval=args.report_interval,
        window_seconds=args.window,
        long_poll=args.long_poll,
        ramp_seconds=args.ramp,
        share_verification=not args.no_shared_verification,
        durable=args.fsync,
    )
    if logging.getLogger().level > logging.INFO:  # N agents are chatty: only problems, unless -v
        logging.getLogger("modelfleet.agent").setLevel(logging.ERROR)
    if args.metrics_port:
        from modelfleet.agent.metrics import serve

        serve(args.metrics_port, args.metrics_host)
    return asyncio.run(_main(configs, options, args.duration, args.progress))


async def _main(
    configs: list[AgentConfig], options: SimulationOptions, duration: float | None, every: float
) -> int:
    from modelfleet.agent.simulator import Simulation

    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)
    async with Simulation(configs, options) as sim:
        try:
            snap = await sim.run(duration, progress=lambda line: print(line, flush=True),
                                 progress_interval=every)  # fmt: skip
        except asyncio.CancelledError:
            snap = sim.snapshot()
        print(f"final: {snap.line()}")
        if sim.cache is not None:
            print(
                f"verification: {sim.cache.misses} full, {sim.cache.hits} shared", file=sys.stderr
            )
    return 0

"""Benchmark of the gateway agent: ``python bench/agent.py [--size-mib N] [--repeat R]``.

In one run it measures:

(a) the idle RSS of one ``modelfleet agent`` process (goal: under 60 MB) after it installed a small
    signed model from a local mTLS fleet API stub and went quiet (polling, reporting);
(b) download + verify of a key-signed artifact (default 1 GiB) over loopback HTTP by the agent's
    own install path (Downloader -> TrustVerifier -> slot marker -> atomic activation), against
    ``curl`` + ``openssl dgst -sha256`` of the same URL in the same run (goal: at most 1.3x their
    combined time). Each contender writes the file to disk; the source is in the page cache.

The file server and the fleet stub run in a thread of this process (aiohttp, sendfile); every
contender runs in its own process. Best of ``--repeat`` runs. Prints a table with ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
GOAL_IDLE_RSS_MB = 60.0
GOAL_RATIO = 1.3


# -- the child that installs one model through the agent's code ------------------------------


def _child_install(data_dir: str, policy: str, uri: str, sig_uri: str, digest: str) -> None:
    import logging
    import resource

    import aiohttp

    from modelfleet.agent.clock import SystemClock
    from modelfleet.agent.download import Downloader
    from modelfleet.agent.healthcheck import AlwaysHealthy
    from modelfleet.agent.installer import InstallerContext, ModelInstaller
    from modelfleet.agent.procverifier import ProcessVerifier
    from modelfleet.agent.protocol import DesiredModel, ModelState
    from modelfleet.agent.state import StateStore

    logging.disable(logging.WARNING)

    async def main() -> float:
        async with aiohttp.ClientSession() as session:
            state = StateStore(Path(data_dir), "bench")
            ctx = InstallerContext(
                gateway="bench",
                data_dir=Path(data_dir),
                fetcher=Downloader(lambda _uri: session),
                verifier=ProcessVerifier(Path(policy)),  # what `modelfleet agent` uses
                health_check=AlwaysHealthy(),
                clock=SystemClock(),
                state=state,
                notify=lambda: None,
                max_artifact_bytes=1 << 40,
            )
            installer = ModelInstaller(ctx, "bench")
            fetch, verify = ctx.fetcher.fetch, ctx.verifier.verify
            spent = {"download": 0.0, "verify": 0.0}

            async def timed_fetch(*a: Any, **k: Any) -> int:
                t = time.perf_counter()
                try:
                    return await fetch(*a, **k)
                finally:
                    spent["download"] += time.perf_counter() - t

            async def timed_verify(*a: Any, **k: Any) -> Any:
                t = time.perf_counter()
                try:
                    return await verify(*a, **k)
                finally:
                    spent["verify"] += time.perf_counter() - t

            ctx.fetcher.fetch = timed_fetch  # type: ignore[method-assign]
            ctx.verifier.verify = timed_verify  # type: ignore[method-assign]
            desired = DesiredModel("bench", "1.0", digest, uri, sig_uri)
            start, cpu0 = time.perf_counter(), _cpu()
            await installer.reconcile(desired)
            seconds = time.perf_counter() - start
            spent["cpu"] = _cpu() - cpu0
            rec = state.get("bench")
            if rec.state is not ModelState.ACTIVE:
                raise SystemExit(f"install failed: {rec.state.value}: {rec.message}")
            return seconds, spent

    seconds, spent = asyncio.run(main())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss, **spent}))


# -- servers in a background thread ----------------------------------------------------------


class Servers:
    """A plain HTTP file server and an mTLS fleet API stub, on one loop in a thread."""

    def __init__(self, files: Path, tls: dict[str, Path] | None, desired: dict[str, Any]) -> None:
        self.files = files
        self.tls = tls
        self.desired = desired
        self.reports: list[dict[str, Any]] = []
        self.http_url = ""
        self.fleet_url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Servers:
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        from aiohttp import web

        files = web.Application()
        files.router.add_static("/", self.files)
        runner = web.AppRunner(files, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.http_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        if self.tls is None:
            return

        async def desired(request: web.Request) -> web.Response:
            return web.json_response(self.desired, headers={"ETag": '"1"'})

        async def report(request: web.Request) -> web.Response:
            self.reports.append(await request.json())
            return web.Response(status=204)

        fleet = web.Application()
        fleet.router.add_get("/v1/desired", desired)
        fleet.router.add_post("/v1/report", report)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.tls["ca"]))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_cert_chain(str(self.tls["cert"]), str(self.tls["key"]))
        frunner = web.AppRunner(fleet, access_log=None)
        await frunner.setup()
        fsite = web.TCPSite(frunner, "127.0.0.1", 0, ssl_context=ctx)
        await fsite.start()
        self.fleet_url = f"https://127.0.0.1:{fsite._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


# -- helpers ---------------------------------------------------------------------------------


def make_signed(folder: Path, size_mib: int) -> tuple[Path, Path, Path, str]:
    """A random single-file model of ``size_mib``, key-signed, with a policy trusting the key."""
    import yaml
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from modelfleet.trust import digest_file, sign_model

    folder.mkdir(parents=True, exist_ok=True)
    artifact = folder / "model.bin"
    chunk = os.urandom(8 << 20)
    with open(artifact, "wb") as fh:
        for i in range(max(1, size_mib // 8)):
            fh.write(chunk[i % 7 :] + chunk[: i % 7])
        if size_mib % 8:
            fh.write(chunk[: (size_mib % 8) << 20])
    key = ec.generate_private_key(ec.SECP256R1())
    signature = sign_model(artifact, folder / "model.sig", private_key=key)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    policy = folder / "trust-policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "modelfleet.dev/v1alpha1",
                "kind": "TrustPolicy",
                "metadata": {"name": "bench"},
                "spec": {"authorities": [{"name": "bench-key", "key": {"data": pem.decode()}}]},
            }
        )
    )
    return artifact, signature, policy, digest_file(artifact)


def _cpu() -> float:
    """User + system CPU seconds of this process and its waited-for children."""
    import resource

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


CPU: dict[str, float] = {}


def timed(cmd: list[str]) -> float:
    """Wall seconds of ``cmd``; its CPU seconds go to ``CPU[cmd[0]]``."""
    start, cpu0 = time.perf_counter(), _cpu()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    CPU[cmd[0]] = _cpu() - cpu0
    return time.perf_counter() - start


def best(runs: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(runs))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the measurements ------------------------------------------------------------------------


def bench_idle(work: Path, idle_seconds: float, entry: list[str]) -> dict[str, float]:
    from modelfleet.agent.config import AgentConfig, write_agent_config
    from modelfleet.certs import TLSFiles
    from modelfleet.enrollment.pki import FleetCA

    artifact, signature, policy, digest = make_signed(work / "small", 1)
    ca = FleetCA.create()
    server, client = ca.issue_server(["127.0.0.1"]), ca.issue_client("bench-gw")
    bundle = work / "bundle"
    bundle.mkdir()
    for name, data in {
        "server.crt": server.cert_pem, "server.key": server.key_pem, "ca.crt": ca.cert_pem,
        "client.crt": client.cert_pem, "client.key": client.key_pem,
    }.items():  # fmt: skip
        (bundle / name).write_bytes(data)
    shutil.copy(policy, bundle / "trust-policy.yaml")
    desired = {
        "gateway": "bench-gw",
        "pollAfterSeconds": 2,
        "models": [
            {
                "model": "bench",
                "version": "1.0",
                "digest": digest,
                "artifact": {"uri": artifact.as_uri()},
                "signature": {"uri": signature.as_uri()},
                "attestations": [],
                "release": "bench",
                "step": None,
            }
        ],
    }
    tls = {"ca": bundle / "ca.crt", "cert": bundle / "server.crt", "key": bundle / "server.key"}
    with Servers(work, tls, desired) as servers:
        config = AgentConfig(
            gateway="bench-gw",
            fleet_url=servers.fleet_url,
            tls=TLSFiles(bundle / "client.crt", bundle / "client.key", bundle / "ca.crt"),
            data_dir=bundle / "data",
            trust_policy=bundle / "trust-policy.yaml",
            poll_interval=2,
            report_interval=2,
        )
        write_agent_config(config, bundle / "agent.yaml")
        proc = subprocess.Popen(
            [sys.executable, *entry, "--config", str(bundle / "agent.yaml")],
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while not any(
                m.get("state") == "Active" for r in servers.reports for m in r.get("models", [])
            ):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the agent did not report Active within 60 s")
                time.sleep(0.2)
            time.sleep(idle_seconds)
            idle = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
    return {"idle_rss_mb": idle, "reports": float(len(servers.reports))}


def bench_install(work: Path, size_mib: int, repeat: int) -> dict[str, float]:
    for tool in ("curl", "openssl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed for the comparison")
    artifact, signature, policy, digest = make_signed(work / "big", size_mib)
    out = work / "curl.out"
    with Servers(work / "big", None, {}) as servers:
        url = f"{servers.http_url}/{artifact.name}"
        sig_url = f"{servers.http_url}/{signature.name}"
        timed(["curl", "-sS", "-o", str(out), url])  # warm-up: page cache, server
        curl_runs, ssl_runs, agent_runs, rss = [], [], [], 0.0
        base_cpu, agent_cpu = [], []
        for _ in range(repeat):
            out.unlink(missing_ok=True)
            curl_runs.append(timed(["curl", "-sS", "-o", str(out), url]))
            ssl_runs.append(timed(["openssl", "dgst", "-sha256", str(out)]))
            base_cpu.append(CPU["curl"] + CPU["openssl"])
            out.unlink()
            data = work / "agent-data"
            shutil.rmtree(data, ignore_errors=True)
            child = subprocess.run(
                [sys.executable, str(HERE), "--child-install", str(data), str(policy), url,
                 sig_url, digest],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            result = json.loads(child.stdout.strip().splitlines()[-1])
            agent_runs.append(result["seconds"])
            agent_cpu.append(result["cpu"])
            print(
                f"  run: curl {curl_runs[-1]:.2f}s openssl {ssl_runs[-1]:.2f}s | agent "
                f"{result['seconds']:.2f}s (download {result['download']:.2f}s, verify "
                f"{result['verify']:.2f}s)",
                file=sys.stderr,
            )
            rss = max(rss, result["rss_mb"])
            shutil.rmtree(data, ignore_errors=True)
    combined = min(c + s for c, s in zip(curl_runs, ssl_runs, strict=True))
    return {
        "curl": min(curl_runs),
        "openssl": min(ssl_runs),
        "combined": combined,
        "agent": min(agent_runs),
        "agent_rss_mb": rss,
        "base_cpu": min(base_cpu),
        "agent_cpu": min(agent_cpu),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-install":
        _child_install(*sys.argv[2:7])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="artifact size (default 1024)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per contender (best counts)")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle time before RSS")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelfleet-bench-", dir=args.workdir))
    try:
        idle = bench_idle(work / "idle", args.idle_seconds, ["-m", "modelfleet.agent"])
        idle_cli = bench_idle(work / "idle-cli", args.idle_seconds, ["-m", "modelfleet", "agent"])
        inst = bench_install(work / "install", args.size_mib, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = f"{args.size_mib} MiB"
    ratio = inst["agent"] / inst["combined"]
    rows = [
        ("measurement", "value", "goal", "ratio"),
        ("idle RSS, agent (python -m modelfleet.agent)", f"{idle['idle_rss_mb']:.1f} MB",
         f"< {GOAL_IDLE_RSS_MB:.0f} MB", f"{idle['idle_rss_mb'] / GOAL_IDLE_RSS_MB:.2f} of goal"),
        ("idle RSS, agent via the full CLI (modelfleet agent)", f"{idle_cli['idle_rss_mb']:.1f} MB",
         "", ""),
        (f"curl download, {size}", f"{inst['curl']:.2f} s", "", ""),
        (f"openssl dgst -sha256, {size}", f"{inst['openssl']:.2f} s", "", ""),
        ("curl + openssl (best run)", f"{inst['combined']:.2f} s", "", "1.00x"),
        (f"agent download + verify + activate, {size}", f"{inst['agent']:.2f} s",
         f"<= {GOAL_RATIO}x", f"{ratio:.2f}x"),
        ("agent throughput", f"{args.size_mib / inst['agent']:.0f} MiB/s", "", ""),
        ("CPU time, curl + openssl (user+sys)", f"{inst['base_cpu']:.2f} s", "", "1.00x"),
        ("CPU time, agent incl. its verify worker", f"{inst['agent_cpu']:.2f} s", "",
         f"{inst['agent_cpu'] / inst['base_cpu']:.2f}x"),
        ("peak RSS of the installing process", f"{inst['agent_rss_mb']:.1f} MB", "", ""),
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    ok = idle["idle_rss_mb"] < GOAL_IDLE_RSS_MB and ratio <= GOAL_RATIO
    print(f"\ngoals {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()

"""The API server's side of the write budget: EdgeGateway status writes per second, and the CPU
each one costs kube-apiserver and etcd, with the watchers a deployment has.

    .venv/bin/python bench/api_writes.py                       # 2,000 gateways, 0/1/3 watchers
    .venv/bin/python bench/api_writes.py --gateways 5000 --writes 10000 --watchers 0,3,10

On a real etcd + kube-apiserver (``modelfleet.devcluster``; ``USE_EXISTING_CLUSTER=true`` to use
yours): creates N EdgeGateways, opens W watches on them (the operator and each fleet API replica
watch every EdgeGateway of their namespaces: every write is sent to each), then sends K status
merge patches, each with a model, a health window and the resourceVersion precondition, as the
fleet API writes them, at ``--concurrency`` in flight; and waits until every watch has seen the
last write. Prints writes/s and kube-apiserver and etcd CPU per write (from /proc) beside the
load average, for each watcher count. The client runs in this process on the same machine, so
the rates are what this machine gives with its cores shared; the CPU per write is the API
server's own. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "bench"))

from modelfleet.devcluster import ControlPlane  # noqa: E402
from modelfleet.kube import KubeClient, custom_path, load_access  # noqa: E402
from operator_figures import load, now_iso, proc_cpu  # noqa: E402

G, V, P, NS = "modelfleet.dev", "v1alpha1", "edgegateways", "writes"


def status(n: int) -> dict[str, Any]:
    at = now_iso()
    digest = "sha256:" + f"{n:064x}"[-64:]
    return {
        "lastSeen": at,
        "agentVersion": "bench",
        "models": [{"model": "detector", "version": f"{n}.0.0", "digest": digest, "slot": "A",
                    "state": "Active", "since": at, "message": ""}],
        "health": [{"model": "detector", "version": f"{n}.0.0", "window": "60s", "windowEnd": at,
                    "requests": 1000, "errors": 1, "latencyP95Ms": 30}],
        "reportSequence": {"session": "bench", "number": n + 1},
    }  # fmt: skip


async def watch(kube: KubeClient, version: str, seen: dict[int, int], i: int) -> None:
    """Count events on one watch of the namespace's EdgeGateways."""
    async for event in kube.watch(custom_path(P, NS), resource_version=version):
        if event.get("type") == "MODIFIED":
            seen[i] += 1


async def one(kube: KubeClient, cp: ControlPlane, args: argparse.Namespace, watchers: int,
              round_: int) -> dict[str, float]:  # fmt: skip
    items, version = await kube.list_all(custom_path(P, NS))
    versions = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in items}
    seen = dict.fromkeys(range(watchers), 0)
    tasks = [asyncio.create_task(watch(kube, version, seen, i)) for i in range(watchers)]
    await asyncio.sleep(1)
    names = sorted(versions)
    gate = asyncio.Semaphore(args.concurrency)

    async def write(k: int) -> None:
        name = names[k % len(names)]
        async with gate:
            obj = await kube.merge_patch_status(
                P, NS, name, {"status": status(round_ * args.writes + k)},
                resource_version=versions[name] if k < len(names) else None,
            )  # fmt: skip
            versions[name] = obj["metadata"]["resourceVersion"]

    pids = {"apiserver": cp.apiserver.pid, "etcd": cp.etcd.pid}  # type: ignore[union-attr]
    cpu0 = {k: proc_cpu(p) for k, p in pids.items()}
    started = time.monotonic()
    await asyncio.gather(*(write(k) for k in range(args.writes)))
    written = time.monotonic() - started
    deadline = time.monotonic() + 120
    while any(n < args.writes for n in seen.values()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    delivered = time.monotonic() - started
    cpu = {k: proc_cpu(p) - cpu0[k] for k, p in pids.items()}
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"watchers": watchers, "rate": args.writes / written, "delivered": delivered,
            "apiserver_ms": 1000 * cpu["apiserver"] / args.writes,
            "etcd_ms": 1000 * cpu["etcd"] / args.writes,
            "missed": sum(max(0, args.writes - n) for n in seen.values())}  # fmt: skip


async def run(args: argparse.Namespace) -> int:
    cp = ControlPlane.from_environment()
    cp.start()
    try:
        cp.create_namespace(NS)
        async with KubeClient(
            load_access(cp.kubeconfig), connections=args.concurrency + 16
        ) as kube:
            gate = asyncio.Semaphore(args.concurrency)

            async def create(i: int) -> None:
                body = {"apiVersion": f"{G}/{V}", "kind": "EdgeGateway",
                        "metadata": {"name": f"gw-{i:06d}"}, "spec": {"site": "bench"}}  # fmt: skip
                async with gate:
                    await kube.create(custom_path(P, NS), body)

            t = time.monotonic()
            await asyncio.gather(*(create(i) for i in range(args.gateways)))
            print(f"{args.gateways:,} EdgeGateways created in {time.monotonic() - t:.0f} s "
                  f"({load()})", flush=True)  # fmt: skip
            rows = []
            for round_, w in enumerate(int(x) for x in args.watchers.split(",")):
                r = await one(kube, cp, args, w, round_)
                r["load"] = load()
                rows.append(r)
                print(r, flush=True)
    finally:
        cp.stop()
    print(f"\n{args.writes:,} status writes to {args.gateways:,} EdgeGateways, "
          f"{args.concurrency} in flight")  # fmt: skip
    print(f"{'watchers':>8}  {'writes/s':>8}  {'all delivered':>13}  {'apiserver CPU/write':>19}  "
          f"{'etcd CPU/write':>14}  load")  # fmt: skip
    for r in rows:
        print(f"{r['watchers']:>8}  {r['rate']:>8.0f}  {r['delivered']:>12.1f}s  "
              f"{r['apiserver_ms']:>17.2f}ms  {r['etcd_ms']:>12.2f}ms  {r['load']}")  # fmt: skip
    print(
        "(the write budget: 100,000 idle gateways write ~480/s at the 180 s heartbeat; "
        "docs/scale.md)"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=2000)
    parser.add_argument("--writes", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--watchers", default="0,1,3", help="watch counts, one round each")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

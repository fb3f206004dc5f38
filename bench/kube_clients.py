"""Our Kubernetes client (modelfleet.kube) against kubernetes_asyncio, on the paths we use.

    .venv/bin/pip install kubernetes_asyncio      # not a project dependency: only this comparison
    .venv/bin/python bench/kube_clients.py        # --gateways 5000 --requests 300

On a real etcd + kube-apiserver (``USE_EXISTING_CLUSTER=true`` to use yours): creates N
EdgeGateways, then runs each client in a fresh process (clean RSS and CPU figures) doing what the
operator and the fleet API do: list every EdgeGateway (paginated, 500) and open a watch (time to
synced), K GETs of one EdgeGateway and K status merge patches with a resourceVersion precondition
(latency p50/p95), the watch receiving those K events. Prints a table and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from modelfleet.devcluster import ControlPlane  # noqa: E402
from modelfleet.kube import KubeClient, custom_path, load_access  # noqa: E402

G, V, P = "modelfleet.dev", "v1alpha1", "edgegateways"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def seed(kubeconfig: str, ns: str, n: int) -> None:
    async with KubeClient(load_access(kubeconfig), connections=16) as kube:
        await kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            body = {"apiVersion": f"{G}/{V}", "kind": "EdgeGateway",
                    "metadata": {"name": f"gw-{i:05d}", "labels": {"tier": "retail"}},
                    "spec": {"certificateFingerprint": "sha256:" + f"{i:064x}"}}  # fmt: skip
            async with sem:
                await kube.create(custom_path(P, ns), body)

        await asyncio.gather(*(one(i) for i in range(n)))


async def count_modified(events: AsyncIterator[dict[str, Any]], k: int, got: asyncio.Event) -> None:
    seen = 0
    async for event in events:
        if event["type"] == "MODIFIED":
            seen += 1
            if seen >= k:
                got.set()


async def measure(
    events: AsyncIterator[dict[str, Any]],
    k: int,
    get: Callable[[], Awaitable[dict[str, Any]]],
    patch: Callable[[int, str], Awaitable[Any]],
) -> dict[str, float]:
    """K GETs and K preconditioned status patches, then the wait for the watch's K events."""
    got = asyncio.Event()
    task = asyncio.create_task(count_modified(events, k, got))
    gets, patches = [], []
    for i in range(k):
        t = time.perf_counter()
        obj = await get()
        gets.append(time.perf_counter() - t)
        t = time.perf_counter()
        await patch(i, obj["metadata"]["resourceVersion"])
        patches.append(time.perf_counter() - t)
    t = time.perf_counter()
    await asyncio.wait_for(got.wait(), 60)
    tail = time.perf_counter() - t
    task.cancel()
    return {"watch_tail_s": tail, "get_p50_ms": pct(gets, 0.5), "get_p95_ms": pct(gets, 0.95),
            "patch_p50_ms": pct(patches, 0.5), "patch_p95_ms": pct(patches, 0.95)}  # fmt: skip


def status_patch(i: int) -> dict[str, Any]:
    return {"status": {"lastSeen": "2026-01-01T00:00:00Z", "agentVersion": f"0.{i}"}}


async def ours(kubeconfig: str, ns: str, n: int, k: int) -> dict[str, float]:
    out: dict[str, float] = {}
    async with KubeClient(load_access(kubeconfig)) as kube:
        t0 = time.perf_counter()
        items, rv = await kube.list_all(custom_path(P, ns))
        out["list_s"] = time.perf_counter() - t0
        assert len(items) == n
        path = custom_path(P, ns, "gw-00000")
        out |= await measure(
            kube.watch(custom_path(P, ns), rv),
            k,
            lambda: kube.get(path),
            lambda i, version: kube.merge_patch_status(
                P, ns, "gw-00000", status_patch(i), resource_version=version
            ),
        )
    return out


async def theirs(kubeconfig: str, ns: str, n: int, k: int) -> dict[str, float]:
    from kubernetes_asyncio import client, config, watch

    out: dict[str, float] = {}
    await config.load_kube_config(config_file=kubeconfig)
    async with client.ApiClient() as api:
        objs = client.CustomObjectsApi(api)
        t0 = time.perf_counter()
        items: list[Any] = []
        token = None
        while True:
            kw = {"limit": 500, **({"_continue": token} if token else {})}
            doc = await objs.list_namespaced_custom_object(G, V, ns, P, **kw)
            items += doc["items"]
            token = doc["metadata"].get("continue")
            if not token:
                break
        rv = doc["metadata"]["resourceVersion"]
        out["list_s"] = time.perf_counter() - t0
        assert len(items) == n
        w = watch.Watch()
        events = w.stream(objs.list_namespaced_custom_object, G, V, ns, P, resource_version=rv,
                          allow_watch_bookmarks=True)  # fmt: skip
        out |= await measure(
            events,
            k,
            lambda: objs.get_namespaced_custom_object(G, V, ns, P, "gw-00000"),
            lambda i, version: objs.patch_namespaced_custom_object_status(
                G, V, ns, P, "gw-00000",
                {**status_patch(i), "metadata": {"resourceVersion": version}},
                _content_type="application/merge-patch+json",
            ),
        )  # fmt: skip
    return out


def child(which: str, kubeconfig: str, ns: str, n: int, k: int) -> None:
    import gc

    gc.collect()
    base = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    out = asyncio.run((ours if which == "ours" else theirs)(kubeconfig, ns, n, k))
    end = resource.getrusage(resource.RUSAGE_SELF)
    out["wall_s"] = time.perf_counter() - t0
    out["cpu_s"] = (end.ru_utime - base.ru_utime) + (end.ru_stime - base.ru_stime)
    out["rss_mb"] = end.ru_maxrss / 1024
    print(json.dumps(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gateways", type=int, default=5000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--child", nargs=3, metavar=("WHICH", "KUBECONFIG", "NS"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], args.gateways, args.requests)
        return 0
    cp = ControlPlane.from_environment()
    cp.start()
    try:
        ns = f"bench-kube-{secrets.token_hex(3)}"
        asyncio.run(seed(str(cp.kubeconfig), ns, args.gateways))
        results = {}
        for which in ("ours", "kubernetes_asyncio"):
            proc = subprocess.run(
                [sys.executable, __file__, "--gateways", str(args.gateways), "--requests",
                 str(args.requests), "--child", which, str(cp.kubeconfig), ns],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[which] = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        cp.stop()
    print(f"{args.gateways} EdgeGateways, {args.requests} GETs + status patches, same run")
    print(f"{'':14}{'ours':>12}{'k8s_asyncio':>14}{'ratio':>8}")
    for key in results["ours"]:
        a, b = results["ours"][key], results["kubernetes_asyncio"][key]
        print(f"{key:14}{a:12.3f}{b:14.3f}{(b / a if a else 0):8.2f}")
    print("ratio = kubernetes_asyncio / ours (above 1: ours is faster or smaller)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

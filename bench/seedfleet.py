"""Seed custom objects straight into the dev control plane's etcd: benchmark setup only.

This BYPASSES THE API SERVER. It exists because creating 100,000 EdgeGateways with their status
through the API server (a POST, then a status merge-patch: two requests, admission, validation,
managed fields) ran at 20-46 objects/s on a loaded 2-core machine, so a 100,000-gateway benchmark
spent over an hour on setup before measuring anything. Here each object is written as the API
server itself would store it: JSON (custom resources are stored as JSON) under
``/registry/<group>/<plural>/<namespace>/<name>`` (kube-apiserver's default ``--etcd-prefix``,
which ``modelfleet.devcluster.ControlPlane`` does not change), through etcd's JSON gRPC gateway
(``POST /v3/kv/put``, one object per request, so each object gets a revision of its own as
through the API server). The API server's watch cache follows etcd, so
its lists and watches see the seeded objects as if they had been created through it, and later
writes to them (e.g. a status merge-patch) go through the API server as usual.

Nothing is measured through this path: everything a benchmark measures afterwards (the
operator's list and watch, releases, reports through the status subresource) goes through the
API server. The objects skip the API server's validation and defaulting, so they must already be
valid: give each one ``apiVersion``, ``kind``, ``metadata`` (``name`` and ``namespace`` at least;
``uid``, ``creationTimestamp`` and ``generation`` are filled in when missing), ``spec`` and
``status``. Never point this at a cluster that matters.

    from seedfleet import seed_objects
    seconds = seed_objects(cp, objects, concurrency=64, progress=print)

``python bench/seedfleet.py --gateways 100000`` starts a control plane, seeds that many
EdgeGateways, checks that the API server lists them, and prints the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import itertools
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from modelfleet.devcluster import ControlPlane  # noqa: E402

PREFIX = "/registry"  # kube-apiserver's default --etcd-prefix
PLURALS = {"EdgeGateway": "edgegateways", "ModelRelease": "modelreleases"}
MAX_OPS = 128  # etcd's default --max-txn-ops
MAX_BYTES = 1_000_000  # under etcd's default --max-request-bytes (1.5 MiB)


def etcd_key(obj: dict[str, Any]) -> str:
    """Where the API server keeps ``obj`` in etcd."""
    group = str(obj["apiVersion"]).split("/", 1)[0]
    kind = str(obj["kind"])
    plural = PLURALS.get(kind, kind.lower() + "s")
    meta = obj["metadata"]
    return f"{PREFIX}/{group}/{plural}/{meta['namespace']}/{meta['name']}"


def stored(obj: dict[str, Any], now: str) -> bytes:
    """The object as the API server would store it (no resourceVersion: etcd's revision is it)."""
    meta = dict(obj["metadata"])
    meta.setdefault("uid", str(uuid.uuid4()))
    meta.setdefault("creationTimestamp", now)
    meta.setdefault("generation", 1)
    meta.pop("resourceVersion", None)
    return json.dumps({**obj, "metadata": meta}, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _batches(objects: Iterable[dict[str, Any]], batch: int) -> Iterator[list[tuple[str, bytes]]]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out: list[tuple[str, bytes]] = []
    size = 0
    for obj in objects:
        item = (etcd_key(obj), stored(obj, now))
        if out and (len(out) >= batch or size + len(item[1]) * 4 // 3 > MAX_BYTES):
            yield out
            out, size = [], 0
        out.append(item)
        size += len(item[0]) + len(item[1]) * 4 // 3 + 64
    if out:
        yield out


class _Etcd:
    """One keep-alive HTTP connection per thread to etcd's JSON gateway."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        for attempt in range(3):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, 60)
            try:
                conn.request("POST", path, data, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                text = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
                continue
            if resp.status != 200:
                raise RuntimeError(f"etcd {path}: {resp.status} {text[:300]!r}")
            return dict(json.loads(text))
        raise AssertionError("unreachable")

    def put(self, items: list[tuple[str, bytes]]) -> None:
        if len(items) == 1:
            key, value = items[0]
            self.post("/v3/kv/put", {"key": _b64(key.encode()), "value": _b64(value)})
            return
        ops = [{"request_put": {"key": _b64(k.encode()), "value": _b64(v)}} for k, v in items]
        self.post("/v3/kv/txn", {"success": ops})


def seed_objects(
    cp: ControlPlane,
    objects: Iterable[dict[str, Any]],
    *,
    concurrency: int = 64,
    progress: Callable[[int], None] | None = None,
    batch: int = 1,
) -> float:
    """Write ``objects`` (full JSON objects, ``metadata.namespace`` set) straight into ``cp``'s
    etcd with ``concurrency`` requests in flight; ``progress(n)`` after each request with the
    count written so far. Returns the seconds taken. Setup only: see the module docstring.

    ``batch`` > 1 puts up to 128 objects in one etcd transaction (about 5 times faster), but then they
    share one revision, which the API server never does: a watch that ends and resumes from that
    revision skips the rest of the transaction (seen: 474 of 25,000 objects never reached a
    watcher that resumed 5 times). Use it only when nothing watches while seeding."""
    if cp.existing or cp.etcd is None:
        raise RuntimeError("seed_objects needs a control plane this process started (its etcd)")
    etcd = _Etcd(cp.etcd_port)
    done = 0
    lock = threading.Lock()
    started = time.perf_counter()

    def write(items: list[tuple[str, bytes]]) -> None:
        nonlocal done
        etcd.put(items)
        with lock:
            done += len(items)
            count = done
        if progress is not None:
            progress(count)

    chunks = _batches(objects, max(1, min(batch, MAX_OPS)))
    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        # Bounded look-ahead: encode a window of transactions at a time, not the whole fleet.
        while window := list(itertools.islice(chunks, 4 * max(1, concurrency))):
            for future in [pool.submit(write, items) for items in window]:
                future.result()
    return time.perf_counter() - started


async def create_through_api(
    kube: Any,
    objects: Iterable[dict[str, Any]],
    *,
    concurrency: int = 64,
    progress: Callable[[int], None] | None = None,
) -> float:
    """The same objects the slow, real way: each created through the API server (an existing
    one is kept) and its status written with a merge patch of the status subresource, as the
    fleet API writes it; ``concurrency`` objects in flight (``kube``: a
    ``modelfleet.kube.KubeClient``). Returns the seconds taken."""
    from modelfleet.kube import ApiError, custom_path

    started = time.perf_counter()
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(obj: dict[str, Any]) -> None:
        nonlocal done
        meta = obj["metadata"]
        plural = PLURALS[obj["kind"]]
        body = {k: v for k, v in obj.items() if k != "status"}
        async with gate:
            try:
                await kube.create(custom_path(plural, meta["namespace"]), body)
            except ApiError as exc:
                if not exc.conflict:  # already there (a fleet grown again)
                    raise
            await kube.merge_patch_status(
                plural, meta["namespace"], meta["name"], {"status": obj["status"]}
            )
        done += 1
        if progress is not None:
            progress(done)

    await asyncio.gather(*(one(o) for o in objects))
    return time.perf_counter() - started


def gateway(
    namespace: str, i: int, status: dict[str, Any], created: str | None = None
) -> dict[str, Any]:
    """EdgeGateway ``gw-<i>`` (label ``small`` on the first 1,000) with ``status``; its uid is
    derived from its name, so writing it again keeps its identity."""
    name = f"gw-{i:06d}"
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"edgegateways/{namespace}/{name}")),
        "labels": {"small": "true"} if i < 1000 else {},
    }
    if created is not None:
        meta["creationTimestamp"] = created
    return {"apiVersion": "modelfleet.dev/v1alpha1", "kind": "EdgeGateway",
            "metadata": meta, "spec": {"site": "bench"}, "status": status}  # fmt: skip


def base_status() -> dict[str, Any]:
    """A gateway running model ``base`` 1.0.0, healthy, seen now."""
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"lastSeen": at, "agentVersion": "bench",
            "models": [{"model": "base", "version": "1.0.0", "digest": "sha256:" + "b" * 64,
                        "state": "Active", "slot": "A", "since": at}],
            "health": [{"model": "base", "version": "1.0.0", "window": "5m", "windowEnd": at,
                        "requests": 1000, "errors": 0, "latencyP95Ms": 30}]}  # fmt: skip


def gateways(namespace: str, first: int, last: int) -> Iterator[dict[str, Any]]:
    """EdgeGateways ``gw-<first>`` .. ``gw-<last - 1>``, each running ``base``."""
    status = base_status()
    return (gateway(namespace, i, status) for i in range(first, last))


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1, help="puts per etcd transaction")
    args = parser.parse_args()
    with ControlPlane.from_environment() as cp:
        cp.create_namespace("bench")
        step = max(1, args.gateways // 10)
        printed = [0]
        lock = threading.Lock()

        def progress(n: int) -> None:
            with lock:
                if n // step > printed[0]:
                    printed[0] = n // step
                    print(f"  {n:,} seeded (load {_load()})", flush=True)

        seconds = seed_objects(cp, gateways("bench", 0, args.gateways),
                               concurrency=args.concurrency, progress=progress,
                               batch=args.batch)  # fmt: skip
        print(f"seeded {args.gateways:,} EdgeGateways in {seconds:.1f} s: "
              f"{args.gateways / seconds:,.0f} objects/s (load {_load()})")  # fmt: skip
        listed = cp.kubectl("get", "edgegateways", "-n", "bench", "--chunk-size=500",
                            "--no-headers", "-o", "name", timeout=600).stdout.split()  # fmt: skip
        print(f"the API server lists {len(listed):,} EdgeGateways in namespace bench")
        patched = cp.kubectl("patch", "edgegateway", "gw-000000", "-n", "bench",
                             "--subresource=status", "--type=merge",
                             "-p", '{"status":{"agentVersion":"patched"}}').stdout  # fmt: skip
        print("status merge-patch through the API server:", patched.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())

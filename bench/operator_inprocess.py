"""The operator's own data path at N gateways, without an API server (``bench/operator_scale.py
--in-process N``): EdgeGateway objects as a list returns them (with managedFields), parsed page
by page into the real GatewayCache; the decisions of a new release (membership, then the target
counted) and of timer ticks; then gateway reports as watch events. Prints CPU and wall time,
RSS, and the load average beside each figure. Nothing here asserts.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from modelfleet.api import parse_release
from modelfleet.controller.gateways import GatewayCache
from modelfleet.core import Verification
from modelfleet.core.decide import FleetView, decide
from operator_figures import load, proc_mem
from operator_scale import BASE_DIGEST, NS, G, V


def in_process(n: int, events: int) -> int:
    """The operator's own data path at ``n`` gateways, without an API server: EdgeGateway
    objects as a list returns them, parsed page by page into the real GatewayCache, then the
    decisions of a new release and of timer ticks, and gateway reports as watch events."""
    print(f"== in process: {n:,} EdgeGateways ({load()})", flush=True)
    digest = "sha256:" + "c" * 64
    now = datetime.now(UTC)

    def obj(i: int, model: str | None = None) -> dict[str, Any]:
        at = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        status: dict[str, Any] = {
            "lastSeen": at, "agentVersion": "bench",
            "models": [{"model": "base", "version": "1.0.0", "digest": BASE_DIGEST,
                        "state": "Active", "slot": "A", "since": at}],
            "health": [{"model": "base", "version": "1.0.0", "window": "5m", "windowEnd": at,
                        "requests": 1000, "errors": 0, "latencyP95Ms": 30 + i % 40}],
        }  # fmt: skip
        if model:
            status["models"].append({"model": model, "version": "2.0.0", "digest": digest,
                                     "state": "Active", "slot": "B", "since": at})  # fmt: skip
            status["health"].append({"model": model, "version": "2.0.0", "window": "5m",
                                     "windowEnd": at, "requests": 1000, "errors": 1,
                                     "latencyP95Ms": 40 + i % 50})  # fmt: skip
        managed = [{"manager": m, "operation": "Update", "apiVersion": f"{G}/{V}",
                    "time": at, "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}
                   for m in ("bench", "fleet-api")]  # fmt: skip
        return {"apiVersion": f"{G}/{V}", "kind": "EdgeGateway",
                "metadata": {"name": f"gw-{i:06d}", "namespace": NS, "uid": f"u-{i}",
                             "resourceVersion": str(i), "generation": 1,
                             "labels": {"small": "true"} if i < 1000 else {},
                             "creationTimestamp": at, "managedFields": managed},
                "spec": {"site": "bench"}, "status": status}  # fmt: skip

    rss0 = proc_mem(os.getpid(), "VmRSS")
    cache = GatewayCache(None, [NS])  # type: ignore[arg-type]
    cpu, wall = time.process_time(), time.perf_counter()
    parsed = []
    for first in range(0, n, 500):  # one list page at a time, as the Reflector hands them over
        page = json.loads(json.dumps([obj(i) for i in range(first, min(n, first + 500))]))
        parsed.extend(cache._parse(o) for o in page)
    cache._listed_scope(NS, parsed)
    del parsed
    listed = time.process_time() - cpu
    print(f"listed and parsed: {listed:.1f} s CPU ({time.perf_counter() - wall:.1f} s wall); "
          f"RSS {proc_mem(os.getpid(), 'VmRSS'):.0f} MB (start {rss0:.0f} MB), peak "
          f"{proc_mem(os.getpid(), 'VmHWM'):.0f} MB, goal < 1 GB ({load()})", flush=True)  # fmt: skip
    steps = [
        {"name": "canary", "percent": 5, "bake": "2s"},
        {"name": "half", "percent": 50},
        {"name": "all", "percent": 100},
    ]
    body = {
        "apiVersion": f"{G}/{V}",
        "kind": "ModelRelease",
        "metadata": {"name": "scale", "namespace": NS, "generation": 1},
        "spec": {
            "model": "fleet",
            "version": "2.0.0",
            "artifact": {"uri": "https://models.example.com/x.tar", "digest": digest},
            "trustPolicy": "bench-signers",
            "rollout": {"steps": steps, "gates": {"maxErrorRate": 0.05}},
        },
    }
    tally = cache.tally(NS)

    def decided(r: Any, at: datetime, **kw: Any) -> tuple[Any, float, float]:
        c, w = time.process_time(), time.perf_counter()
        d = decide(r, FleetView(releases=(r,), tally=tally), at, **kw)
        return d, time.process_time() - c, time.perf_counter() - w

    ok = Verification(verified=True, digest=digest, authority="bench", at=now, generation=1)
    # Three new releases, one after the other (other models): is the first one dearer?
    for k, model in enumerate(("fleet-b", "fleet-c", "fleet")):
        body["spec"]["model"] = model
        body["metadata"]["name"] = f"scale-{model}"
        release = parse_release(body)
        d, c1, w1 = decided(release, now)  # Pending -> Verifying: membership counted (one walk)
        release = dataclasses.replace(release, status=d.status)
        d, c2, w2 = decided(release, now, verification=ok)  # -> Progressing: target counted
        release = dataclasses.replace(release, status=d.status)
        print(f"new release {k + 1}: Pending -> Verifying {c1:.2f} s CPU ({w1:.2f} s wall), "
              f"Verifying -> {d.status.phase.value} {c2:.2f} s CPU ({w2:.2f} s wall); goal "
              f"first cohort < 5 s ({load()})", flush=True)  # fmt: skip
    ticks = [decided(release, now + timedelta(seconds=1 + k))[1] for k in range(20)]
    print(f"timer tick, nothing changed: {1000 * statistics.median(ticks):.2f} ms CPU (median of "
          f"20) ({load()})", flush=True)  # fmt: skip
    names = list(range(n))
    random.Random(1).shuffle(names)
    reports = [json.loads(json.dumps(obj(i, "fleet"))) for i in names[:events]]
    cpu = time.process_time()
    for o in reports:
        cache._put(o)  # a watch event: parse + count
    per = (time.process_time() - cpu) / events
    d, c3, _ = decided(release, now + timedelta(seconds=30))
    cohorts = [(c.assigned, c.active, c.reporting) for c in d.status.rollout.cohorts]
    print(f"{events:,} reports as watch events: {1e6 * per:.0f} us CPU each (parse + count); "
          f"next tick {1000 * c3:.1f} ms CPU; cohorts {cohorts} ({load()})", flush=True)  # fmt: skip
    gc.collect()
    print(f"RSS now {proc_mem(os.getpid(), 'VmRSS'):.0f} MB, peak "
          f"{proc_mem(os.getpid(), 'VmHWM'):.0f} MB; goal < 1 GB", flush=True)  # fmt: skip
    return 0

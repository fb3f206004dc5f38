"""Fleet API benchmark: 10,000 enrolled gateways polling with If-None-Match over mTLS.

    .venv/bin/python bench/fleet_api.py --gateways 10000 --duration 60   # Go load generator,
                                                        # long-poll; see bench/fleet_loadgen.py
    .venv/bin/python bench/fleet_api.py --gateways 100000 --workers 7    # 100,000 gateways, long-poll
    .venv/bin/python bench/fleet_api.py --loadgen python   # the asyncio generator, prints a table
    .venv/bin/python bench/fleet_api.py --gateways 2000 --duration 20   # quicker
    .venv/bin/python bench/fleet_api.py --churn          # memory: 5 cycles of 10,000 connections
    .venv/bin/python bench/fleet_api.py --churn --connections 2000 --compare-ref main

``--churn``: cycles of ``--connections`` gateways each opening an mTLS connection, polling
(200, then 304 with the ETag; every 30 s while held) and closing once all are open; prints the
fleet API's RSS with them open, after they closed and after ``--idle`` seconds, with the goals
beside the figures (last cycle within 10 % of the first, idle under 300 MB). ``--compare-ref``
also runs the fleet API of that git ref (its ``operator/`` tree, exported) in the same run.

With ``--loadgen python`` (what follows; ``--loadgen go``, the default, is described in
bench/fleet_loadgen.py), on a real etcd + kube-apiserver (``USE_EXISTING_CLUSTER=true`` to use yours):

1. enrolls N EdgeGateways with ``modelfleet.enrollment.enroll_gateways`` (one CA in memory);
2. creates a ModelRelease and seeds every gateway's status as if it had been reporting for a
   while (``lastSeen`` spread over the heartbeat interval), so the write rate is the steady one;
3. per scenario, starts ``modelfleet fleet-api`` (``--workers W``) and a load generator in a
   separate process: every gateway holds one keep-alive TLS connection with its own client
   certificate and polls ``GET /v1/desired`` with ``If-None-Match`` on an open-loop schedule
   (aggregate ``--rate`` requests/s; latency is measured from the *scheduled* send time, so a
   slow server cannot hide queueing), and reports every ``--report-interval`` seconds like an
   agent (state + a health window);
4. prints requests/s achieved, latency percentiles, errors, and EdgeGateway status writes per
   minute (counted by the API server's watch, not by the fleet API).

Scenarios: ``steady`` (release Succeeded: everybody is told stable) with 1 and 2 workers, and
``rollout`` (release Progressing at its 50 % step: half the fleet is an active cohort, which
reports health at the active cadence) with one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import multiprocessing
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from modelfleet.devcluster import ControlPlane, free_port
from modelfleet.enrollment import Bundle, enroll_gateways
from modelfleet.enrollment.pki import FleetCA
from modelfleet.kube import KubeClient, api_client, custom_path, load_access

ROOT = Path(__file__).resolve().parent.parent
STABLE = "sha256:" + "a" * 64
TARGET = "sha256:" + "b" * 64


# --------------------------------------------------------------------------- load generator


async def _connect(gw: dict[str, Any], args: dict[str, Any]) -> tuple[Any, Any]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(args["ca"])
    ctx.load_cert_chain(gw["cert"], gw["key"])
    async with args["connect_sem"]:
        reader, writer = await asyncio.open_connection(
            args["host"], args["port"], ssl=ctx, server_hostname="localhost"
        )
        # like an agent at start: one poll at once (not measured), which also ends the
        # handshake-to-first-request timeout; the ETag it returns makes later polls conditional
        writer.write(b"GET /v1/desired HTTP/1.1\r\nHost: localhost\r\n\r\n")
        _, gw["etag"], _ = await _read_response(reader, b"")
        return reader, writer


async def _gateway_loop(
    gw: dict[str, Any], conn: tuple[Any, Any], args: dict[str, Any], out: dict[str, Any]
) -> None:
    reader, writer = conn
    start = args["t_start"]
    period = args["gateways"] / args["rate"]
    rnd = random.Random(gw["name"])
    next_poll = start + rnd.uniform(0, period)
    next_report = start + rnd.uniform(0, args["report_interval"])
    session = f"bench-{gw['name']}-{rnd.randrange(1 << 30)}"
    number = 1

    def report_req() -> bytes:  # numbered like an agent: one higher after "written": true
        doc = gw["report"] if not args["sequence"] else {
            **gw["report"], "sequence": {"session": session, "number": number}}  # fmt: skip
        body = json.dumps(doc).encode()
        return (
            b"POST /v1/report HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    etag: bytes = gw.get("etag", b"")
    t_end = args["t_end"]
    t_measure = args["t_measure"]
    while True:
        is_poll = next_poll <= next_report
        scheduled = next_poll if is_poll else next_report
        if scheduled >= t_end:
            break
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if is_poll:
            req = b"GET /v1/desired HTTP/1.1\r\nHost: localhost\r\n"
            if etag:
                req += b"If-None-Match: " + etag + b"\r\n"
            writer.write(req + b"\r\n")
            next_poll += period
        else:
            writer.write(report_req())
            next_report += args["report_interval"]
        status, seen, answer = await _read_response(reader, etag)
        if is_poll:
            etag = seen
        elif b'"written": true' in answer:
            number += 1
        done = time.monotonic()
        if t_measure <= done < t_end:
            out["completed"] += 1
        if scheduled >= t_measure:
            kind = "poll" if is_poll else "report"
            out[kind].append(done - scheduled)
            key = f"{kind}:{status}"
            out["codes"][key] = out["codes"].get(key, 0) + 1
    writer.close()


async def _loadgen_main(args: dict[str, Any], conn: Any) -> dict[str, Any]:
    gateways = json.loads(Path(args["gateways_file"]).read_text())[args["slice"]]
    args["gateways"] = args["total_gateways"]
    args["connect_sem"] = asyncio.Semaphore(32)
    out: dict[str, Any] = {"poll": [], "report": [], "codes": {}, "errors": 0, "completed": 0}
    t0 = time.monotonic()
    conns = await asyncio.gather(*(_connect(g, args) for g in gateways), return_exceptions=True)
    out["connect_s"] = time.monotonic() - t0
    gc.collect()
    gc.freeze()  # 10,000 connections: keep the load generator's own GC out of the latencies
    conn.send(("connected", out["connect_s"]))
    delay = conn.recv()  # every load process starts its schedule at the same moment
    args["t_start"] = time.monotonic() + delay
    args["t_measure"] = args["t_start"] + args["warmup"]
    args["t_end"] = args["t_measure"] + args["duration"]
    tasks = [
        _gateway_loop(g, c, args, out)
        for g, c in zip(gateways, conns, strict=True)
        if not isinstance(c, BaseException)
    ]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in [*conns, *results] if isinstance(r, BaseException)]
    out["errors"] = len(errors)
    if errors:
        out["first_error"] = repr(errors[0])
    return out


def _loadgen_process(args: dict[str, Any], conn: Any) -> None:
    try:
        from modelfleet.fleet.app import run_loop

        result: dict[str, Any] = {}

        async def main() -> None:
            result.update(await _loadgen_main(args, conn))

        run_loop(main())
        conn.send(result)
    except BaseException as exc:  # report, never hang the parent
        conn.send(
            {"poll": [], "report": [], "codes": {}, "errors": 1, "completed": 0,
             "first_error": repr(exc)}
        )  # fmt: skip


def run_load(
    gateways_file: Path, total: int, ca: Path, port: int, *, rate: float, duration: float,
    warmup: float, report_interval: float, processes: int,
    on_start: Any = None, start_at: float | None = None, sequence: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Run the load generator in ``processes`` processes; merged latencies and counts.
    ``on_start(seconds_until_measuring)`` is called once every connection is up."""
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for i in range(processes):
        parent, child = ctx.Pipe()
        args = {
            "gateways_file": str(gateways_file), "slice": slice(i, None, processes),
            "total_gateways": total, "ca": str(ca), "host": "127.0.0.1", "port": port,
            "rate": rate, "duration": duration, "warmup": warmup,
            "report_interval": report_interval, "sequence": sequence,
        }  # fmt: skip
        p = ctx.Process(target=_loadgen_process, args=(args, child))
        p.start()
        procs.append((p, parent))
    connect_s = 0.0
    for _, parent in procs:
        msg = parent.recv()
        if isinstance(msg, tuple):
            connect_s = max(connect_s, msg[1])
    delay = 0.5 if start_at is None else max(0.5, start_at - time.time())
    for _, parent in procs:
        parent.send(delay)
    if on_start is not None:
        on_start(delay + warmup)
    merged: dict[str, Any] = {"poll": [], "report": [], "codes": {}, "errors": 0, "completed": 0}
    merged["connect_s"] = connect_s
    for p, parent in procs:
        part = parent.recv()
        p.join()
        merged["poll"] += part["poll"]
        merged["report"] += part["report"]
        merged["errors"] += part["errors"]
        merged["completed"] += part.get("completed", 0)
        if "first_error" in part:
            merged["first_error"] = part["first_error"]
        for k, v in part["codes"].items():
            merged["codes"][k] = merged["codes"].get(k, 0) + v
    return merged


# --------------------------------------------------------------------------- set-up


def _release(phase: str, step: int) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = {
        "model": "detector",
        "version": "2.0.0" if phase == "Progressing" else "1.0.0",
        "artifact": {"uri": "https://models.example.com/detector/2.0.0/model.tar",
                     "digest": TARGET if phase == "Progressing" else STABLE},
        "trustPolicy": "bench",
        "rollout": {"steps": [{"name": "canary", "percent": 10}, {"name": "half", "percent": 50},
                              {"name": "fleet", "percent": 100}]},
    }  # fmt: skip
    stable = {"version": "1.0.0", "digest": STABLE, "uri": "https://models.example.com/1.0.0.tar"}
    status: dict[str, Any] = {"phase": phase, "stable": stable, "rollout": {"step": step}}
    if phase == "Progressing":
        status["target"] = {"version": "2.0.0", "digest": TARGET,
                            "uri": "https://models.example.com/2.0.0.tar"}  # fmt: skip
    return spec, status


def _report(version: str, digest: str) -> dict[str, Any]:
    return {
        "agentVersion": "bench-1",
        "models": [{"model": "detector", "version": version, "digest": digest, "slot": "A",
                    "state": "Active", "message": ""}],
        "health": [{"model": "detector", "version": version, "window": "60s", "requests": 600,
                    "errors": 1, "latencyP50Ms": 4.0, "latencyP95Ms": 11.0}],
    }  # fmt: skip


def _in_cohort(name: str, percent: int) -> bool:
    from modelfleet.core.cohorts import in_percent

    return in_percent("bench/detector", name, percent)


async def _seed(
    kubeconfig: Path, ns: str, names: list[str], rollout: bool, *, spread: float, lead: float
) -> None:
    """Status as after a while of reporting: what the load generator will report, lastSeen and
    windowEnd spread uniformly over the ``spread`` seconds (60 s for active-cohort gateways)
    before the measured window starts, about ``lead`` seconds from now."""
    access = load_access(kubeconfig)
    sem = asyncio.Semaphore(32)
    now = time.time()
    async with KubeClient(access, connections=32) as kube:

        async def one(name: str) -> None:
            active = rollout and _in_cohort(name, 50)
            version, digest = ("2.0.0", TARGET) if active else ("1.0.0", STABLE)
            report = _report(version, digest)
            seen = now + lead - random.uniform(0, 60 if active else spread)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seen))
            status = {
                "lastSeen": stamp,
                "agentVersion": report["agentVersion"],
                "models": [{**report["models"][0], "since": stamp}],
                "health": [{**report["health"][0], "windowEnd": stamp}],
            }
            async with sem:
                await kube.merge_patch_status("edgegateways", ns, name, {"status": status})

        await asyncio.gather(*(one(n) for n in names))


def _tree_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its live children (the fleet API's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _observe(
    kubeconfig: Path, ns: str, pid: int, start_in: float, duration: float, *,
    others: dict[str, int] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Over [now+start_in, +duration]: EdgeGateway MODIFIED events seen by a watch on the API
    server (status writes), the fleet API's CPU seconds, those of ``others`` (name: pid, e.g.
    kube-apiserver and etcd, from /proc) and the load average."""
    others = others or {}
    result: dict[str, Any] = {"writes": 0, "cpu_s": float("nan"), "load": float("nan")}
    result.update({f"{name}_cpu_s": float("nan") for name in others})

    async def main() -> None:
        async with KubeClient(load_access(kubeconfig)) as kube:
            path = custom_path("edgegateways", ns)
            doc = await kube.request("GET", path, params={"limit": "1"})
            rv = str(doc["metadata"]["resourceVersion"])
            t0 = time.monotonic() + start_in
            t1 = t0 + duration

            async def sample() -> None:
                await asyncio.sleep(max(0.0, t0 - time.monotonic()))
                cpu0 = _tree_cpu(pid)
                base = {name: _tree_cpu(other) for name, other in others.items()}
                await asyncio.sleep(max(0.0, t1 - time.monotonic()))
                result["cpu_s"] = _tree_cpu(pid) - cpu0
                for name, other in others.items():
                    result[f"{name}_cpu_s"] = _tree_cpu(other) - base[name]
                result["load"] = os.getloadavg()[0]

            async def watch() -> None:
                timeout = int(start_in + duration) + 30
                async for event in kube.watch(path, rv, timeout_seconds=timeout):
                    now = time.monotonic()
                    if now > t1:
                        return
                    if event.get("type") == "MODIFIED" and now >= t0:
                        result["writes"] += 1

            sampler = asyncio.create_task(sample())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch(), start_in + duration + 5)
            await sampler

    def run() -> None:
        try:
            asyncio.run(main())
        except Exception as exc:  # shown in the row, never silently zero
            result["error"] = repr(exc)

    import threading

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    result["_thread"] = thread
    return result


def _print_etcd(sizes: list[float | None], count: int, object_bytes: int) -> None:
    """etcd bytes per EdgeGateway: in-use growth over creating them and seeding their status
    (the status seed keeps the spec-only revisions until the API server compacts, every 5 min),
    and the JSON of one object with its status as stored."""
    if None in sizes:
        return
    before, created, seeded = (float(x or 0) for x in sizes)
    print(f"etcd bytes per EdgeGateway: {(created - before) / count:.0f} B in use per object "
          f"created (spec, labels, fingerprint); {(seeded - before) / count:.0f} B after one "
          f"status write each (old revisions not yet compacted); one object with status as "
          f"JSON: {object_bytes} B", flush=True)  # fmt: skip


def _control_pids(cp: ControlPlane) -> dict[str, int]:
    """The local control plane's processes (none with an existing cluster)."""
    procs = {"kube-apiserver": cp.apiserver, "etcd": cp.etcd}
    return {name: p.pid for name, p in procs.items() if p is not None}


def _etcd_in_use(cp: ControlPlane) -> float | None:
    """etcd's ``db_total_size_in_use_in_bytes`` (None with an existing cluster)."""
    if cp.etcd is None:
        return None
    url = f"http://127.0.0.1:{cp.etcd_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("etcd_mvcc_db_total_size_in_use_in_bytes "):
                return float(line.split()[1])
    return None


def _free_ports(count: int) -> int:
    """A port P with P .. P + count - 1 all free (one metrics port per worker)."""
    import socket

    while True:
        first = free_port()
        try:
            for i in range(1, count):
                with socket.create_server(("127.0.0.1", first + i)):
                    pass
        except OSError:
            continue
        return first


def _start_fleet_api(
    cp: ControlPlane, ns: str, tls: dict[str, Path], workers: int, log: Path, *,
    env: dict[str, str] | None = None, ready_timeout: float = 120.0,
) -> tuple[subprocess.Popen[bytes], int]:  # fmt: skip
    port, mport = free_port(), _free_ports(workers)
    cmd = [
        sys.executable, "-m", "modelfleet", "fleet-api", "-n", ns, "--port", str(port),
        "--host", "127.0.0.1", "--metrics-port", str(mport), "--workers", str(workers),
        "--tls-cert", str(tls["cert"]), "--tls-key", str(tls["key"]),
        "--client-ca", str(tls["ca"]), "--rate-limit", "50", "--rate-burst", "100",
        # connections are all opened before the schedule starts, which can take minutes on a
        # loaded machine: keep them (agents poll every 30 s, far inside the default 75 s)
        "--keepalive-timeout", "900",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        env={**cp.env, **(env or {})},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        ready = 0
        for i in range(workers):
            url = f"http://127.0.0.1:{mport + i}/healthz"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):
                ready += 1
        if ready == workers:
            return proc, port
        if proc.poll() is not None:
            raise RuntimeError(f"fleet-api exited: {log.read_text()[-2000:]}")
        time.sleep(0.3)
    _stop(proc)
    raise RuntimeError(f"fleet-api did not become ready in {ready_timeout:.0f}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


async def _read_response(reader: asyncio.StreamReader, etag: bytes) -> tuple[int, bytes, bytes]:
    """Read one HTTP/1.1 response; its status, ETag (``etag`` if none) and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value)
        elif lname == b"etag":
            etag = value.strip()
    body = await reader.readexactly(length) if length else b""
    return int(head[9:12]), etag, body


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000.0


# --------------------------------------------------------------------------- churn


async def _churn_client(gw: dict[str, Any], args: dict[str, Any], state: dict[str, Any]) -> Any:
    """One gateway's connection in a churn cycle: connect, poll (200, then a conditional 304),
    keep polling every 30 s until every connection of the cycle has been open, close."""
    async with args["connect_sem"]:
        reader, writer = await asyncio.open_connection(
            args["host"], args["port"], ssl=gw["ctx"], server_hostname="localhost"
        )
    try:
        etag = b""
        for poll in itertools.count():
            if poll >= 2:  # held open: poll every 30 s like an agent (keep-alive is 75 s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state["close"].wait(), 30.0)
                if state["close"].is_set():
                    break
            req = b"GET /v1/desired HTTP/1.1\r\nHost: localhost\r\n"
            if etag:
                req += b"If-None-Match: " + etag + b"\r\n"
            writer.write(req + b"\r\n")
            status, etag, _ = await _read_response(reader, etag)
            state["codes"][status] = state["codes"].get(status, 0) + 1
            if poll == 1:
                state["open"] += 1
                if state["open"] == state["expected"]:
                    state["all_open"].set()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return None


async def _churn_loadgen_main(args: dict[str, Any], conn: Any) -> None:
    gateways = json.loads(Path(args["gateways_file"]).read_text())
    for gw in gateways:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(args["ca"])
        ctx.load_cert_chain(gw["cert"], gw["key"])
        gw["ctx"] = ctx
    args["connect_sem"] = asyncio.Semaphore(args["concurrency"])
    conn.send("ready")
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command != "cycle":
            return
        state: dict[str, Any] = {
            "codes": {}, "open": 0, "expected": len(gateways),
            "all_open": asyncio.Event(), "close": asyncio.Event(),
        }  # fmt: skip
        t0 = time.monotonic()
        tasks = [asyncio.create_task(_churn_client(g, args, state)) for g in gateways]

        async def all_done(tasks: list[Any], state: dict[str, Any]) -> None:
            await asyncio.gather(*tasks, return_exceptions=True)
            state["all_open"].set()  # some failed: nothing more will open

        finisher = asyncio.create_task(all_done(tasks, state))
        await state["all_open"].wait()
        opened = time.monotonic() - t0
        conn.send({"open": state["open"], "open_s": opened})
        await loop.run_in_executor(None, conn.recv)  # the parent has sampled the peak
        state["close"].set()
        await finisher
        errors = [t.exception() for t in tasks if t.exception() is not None]
        conn.send({
            "codes": {str(k): v for k, v in state["codes"].items()}, "errors": len(errors),
            "first_error": repr(errors[0]) if errors else "",
        })  # fmt: skip


def _churn_loadgen_process(args: dict[str, Any], conn: Any) -> None:
    try:
        from modelfleet.fleet.app import run_loop

        run_loop(_churn_loadgen_main(args, conn))
    except BaseException as exc:  # report, never hang the parent
        conn.send({"fatal": repr(exc)})


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _settle(pid: int, baseline_fds: int, timeout: float = 60.0) -> int:
    """Wait until the server holds no more descriptors than before the cycle (or timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        fds = _fds(pid)
        if fds <= baseline_fds or time.monotonic() > deadline:
            return fds
        time.sleep(0.25)


def _export_ref(ref: str, folder: Path) -> Path:
    """The ``operator/`` tree of git ``ref``, exported into ``folder`` (no worktree touched)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "operator"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "operator"


def fleet_tls(ca: FleetCA, work: Path) -> dict[str, Path]:
    """The fleet API's server certificate and key and the CA, as files in ``work``."""
    server = ca.issue_server(["localhost", "127.0.0.1"])
    tls = {"cert": work / "tls.crt", "key": work / "tls.key", "ca": work / "ca.crt"}
    tls["cert"].write_bytes(server.cert_pem)
    tls["key"].write_bytes(server.key_pem)
    tls["ca"].write_bytes(ca.cert_pem)
    return tls


def _enrolled_fleet(
    cp: ControlPlane, work: Path, ns: str, count: int
) -> tuple[Any, dict[str, Path], list[str], Path]:
    """Namespace ``ns`` with ``count`` enrolled gateways ``gw-00000``...: returns the API client,
    the fleet API's TLS files, the gateway names and the folder of their ``NAME.crt/.key``."""
    cp.create_namespace(ns)
    api = api_client(load_access(cp.kubeconfig))
    ca = FleetCA.create()
    tls = fleet_tls(ca, work)
    names = [f"gw-{i:05d}" for i in range(count)]
    t0 = time.monotonic()
    wanted: list[tuple[str, dict[str, str]]] = [(n, {"tier": "retail"}) for n in names]

    async def enroll() -> list[Bundle]:
        async with KubeClient(load_access(cp.kubeconfig)) as kube:
            return await enroll_gateways(kube, wanted, namespace=ns, ca=ca)

    bundles = asyncio.run(enroll())
    enroll_s = time.monotonic() - t0
    print(f"enrolled {len(bundles)} gateways in {enroll_s:.1f}s "
          f"({len(bundles) / max(enroll_s, 1e-9):.0f}/s)", flush=True)  # fmt: skip
    certs = work / "certs"
    certs.mkdir()
    for b in bundles:
        (certs / f"{b.gateway}.crt").write_bytes(b.cert_pem)
        (certs / f"{b.gateway}.key").write_bytes(b.key_pem)
    return api, tls, names, certs


def churn(args: argparse.Namespace) -> int:
    """``--churn``: cycles of connections opening, polling and closing; RSS after each cycle."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="modelfleet-bench-churn-"))
    n = args.connections
    variants: list[tuple[str, dict[str, str]]] = [("this tree", {})]
    if args.compare_ref:
        code = _export_ref(args.compare_ref, work / "ref")
        env = {"PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")])}
        variants.append((args.compare_ref, env))
    cp = ControlPlane.from_environment()
    cp.start()
    results: list[dict[str, Any]] = []
    try:
        ns = "bench-churn"
        api, tls, names, certs = _enrolled_fleet(cp, work, ns, n)
        gateways = [{"cert": str(certs / f"{name}.crt"), "key": str(certs / f"{name}.key")}
                    for name in names]  # fmt: skip
        gw_file = work / "gateways.json"
        gw_file.write_text(json.dumps(gateways))
        from kubernetes import client as kclient

        spec, status = _release("Succeeded", 2)
        objects = kclient.CustomObjectsApi(api)
        body = {"apiVersion": "modelfleet.dev/v1alpha1", "kind": "ModelRelease",
                "metadata": {"name": "detector", "namespace": ns}, "spec": spec}  # fmt: skip
        objects.create_namespaced_custom_object(
            "modelfleet.dev", "v1alpha1", ns, "modelreleases", body
        )
        objects.patch_namespaced_custom_object_status(
            "modelfleet.dev", "v1alpha1", ns, "modelreleases", "detector", {"status": status}
        )
        for label, env in variants:
            results.append(
                _churn_variant(
                    args, cp, ns=ns, tls=tls, gw_file=gw_file, label=label, env=env, work=work
                )
            )
    finally:
        cp.stop()
        shutil.rmtree(work, ignore_errors=True)
    _print_churn(args, results)
    return 0


def _churn_variant(
    args: argparse.Namespace, cp: ControlPlane, *, ns: str, tls: dict[str, Path],
    gw_file: Path, label: str, env: dict[str, str], work: Path,
) -> dict[str, Any]:  # fmt: skip
    log = work / f"api-churn-{len(label)}-{abs(hash(label))}.log"
    proc, port = _start_fleet_api(cp, ns, tls, 1, log, env=env)
    row: dict[str, Any] = {"label": label, "cycles": [], "errors": 0, "codes": {}}
    try:
        pid = proc.pid
        time.sleep(2.0)
        row["start_rss"] = _rss_mb(pid)
        base_fds = _fds(pid)
        print(f"[{label}] fleet API pid {pid}: RSS {row['start_rss']:.0f} MB, "
              f"{base_fds} descriptors", flush=True)  # fmt: skip
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        largs = {"gateways_file": str(gw_file), "ca": str(tls["ca"]), "host": "127.0.0.1",
                 "port": port, "concurrency": args.connect_concurrency}  # fmt: skip
        loadgen = ctx.Process(target=_churn_loadgen_process, args=(largs, child))
        loadgen.start()
        try:
            msg = parent.recv()
            if msg != "ready":
                raise RuntimeError(f"load generator failed: {msg}")
            for cycle in range(1, args.cycles + 1):
                parent.send("cycle")
                opened = parent.recv()
                if "fatal" in opened:
                    raise RuntimeError(f"load generator failed: {opened['fatal']}")
                peak = _rss_mb(pid)
                peak_fds = _fds(pid)
                parent.send("close")
                closed = parent.recv()
                if "fatal" in closed:
                    raise RuntimeError(f"load generator failed: {closed['fatal']}")
                fds = _settle(pid, base_fds)
                time.sleep(args.settle)
                after = _rss_mb(pid)
                row["errors"] += closed["errors"]
                for k, v in closed["codes"].items():
                    row["codes"][k] = row["codes"].get(k, 0) + v
                if closed["first_error"]:
                    row["first_error"] = closed["first_error"]
                entry = {
                    "cycle": cycle, "open": opened["open"], "open_s": opened["open_s"],
                    "peak_rss": peak, "peak_fds": peak_fds, "rss": after, "fds": fds,
                    "load": os.getloadavg()[0], "errors": closed["errors"],
                }  # fmt: skip
                row["cycles"].append(entry)
                print(f"[{label}] cycle {cycle}: {opened['open']} connections open in "
                      f"{opened['open_s']:.1f}s, RSS with them open {peak:.0f} MB "
                      f"({peak_fds} fds); after closing {after:.0f} MB ({fds} fds), "
                      f"errors {closed['errors']}, load {entry['load']:.1f}", flush=True)  # fmt: skip
            parent.send("stop")
        finally:
            loadgen.join(30)
            if loadgen.is_alive():
                loadgen.kill()
        time.sleep(args.idle)
        row["idle_rss"] = _rss_mb(pid)
        row["idle_fds"] = _fds(pid)
        row["idle_load"] = os.getloadavg()[0]
        print(f"[{label}] idle {args.idle:.0f}s after the last cycle: RSS "
              f"{row['idle_rss']:.0f} MB, {row['idle_fds']} descriptors", flush=True)  # fmt: skip
    finally:
        _stop(proc)
    return row


def _print_churn(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    print()
    print(f"fleet API churn: {args.cycles} cycles of {args.connections} mTLS connections "
          f"opening, polling (200 then 304) and closing; {os.cpu_count()} cores")  # fmt: skip
    for row in results:
        cycles = row["cycles"]
        if not cycles:
            continue
        first, last = cycles[0]["rss"], cycles[-1]["rss"]
        growth = (last - first) / first * 100.0
        peak = max(c["peak_rss"] for c in cycles)
        per_conn = (cycles[0]["peak_rss"] - row["start_rss"]) * 1024.0 / max(1, cycles[0]["open"])
        print()
        print(f"code: {row['label']}; RSS at start {row['start_rss']:.0f} MB")
        print("cycle | open | RSS open MB | RSS after MB | fds after | errors | load avg")
        print("--- | --- | --- | --- | --- | --- | ---")
        for c in cycles:
            print(f"{c['cycle']} | {c['open']} | {c['peak_rss']:.0f} | {c['rss']:.0f} | "
                  f"{c['fds']} | {c['errors']} | {c['load']:.1f}")  # fmt: skip
        ok_growth = abs(growth) <= 10.0
        ok_idle = row["idle_rss"] < 300.0
        print(
            f"RSS after the last cycle vs the first: {last:.0f} vs {first:.0f} MB "
            f"({growth:+.1f}%)   goal within 10%: {'met' if ok_growth else 'MISSED'}"
        )
        print(
            f"idle RSS after all cycles: {row['idle_rss']:.0f} MB ({row['idle_fds']} fds, "
            f"load {row['idle_load']:.1f})   goal < 300 MB: {'met' if ok_idle else 'MISSED'}"
        )
        print(
            f"peak RSS {peak:.0f} MB; memory per open connection ≈ {per_conn:.0f} KiB; "
            f"answers {row['codes']}; connection errors {row['errors']}"
            + (f" (first: {row['first_error']})" if row.get("first_error") else "")
        )


def create_release(cp: ControlPlane, ns: str) -> None:
    """A ModelRelease that has Succeeded: every gateway is told the stable version."""
    from kubernetes import client as kclient

    objects = kclient.CustomObjectsApi(api_client(load_access(cp.kubeconfig)))
    spec, status = _release("Succeeded", 2)
    body = {"apiVersion": "modelfleet.dev/v1alpha1", "kind": "ModelRelease",
            "metadata": {"name": "detector", "namespace": ns}, "spec": spec}  # fmt: skip
    objects.create_namespaced_custom_object("modelfleet.dev", "v1alpha1", ns, "modelreleases", body)
    objects.patch_namespaced_custom_object_status(
        "modelfleet.dev", "v1alpha1", ns, "modelreleases", "detector", {"status": status}
    )


# what bench/fleet_loadgen.py (--loadgen go) uses of this module
report_body = _report
start_fleet_api = _start_fleet_api
control_pids = _control_pids
observe = _observe
stop = _stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=10_000)
    parser.add_argument(
        "--loadgen", choices=("go", "python"), default="go",
        help="go: bench/loadgen, one process per 15,000 gateways (long-poll or poll); python: "
        "the asyncio generator (poll only, --scenarios, --loadgen-processes)",
    )  # fmt: skip
    parser.add_argument(
        "--mode", choices=("longpoll", "poll"), default="longpoll",
        help="go: hold GET /v1/desired?wait=N and ask again at once, or conditional polls on "
        "an open-loop schedule (--rate)",
    )  # fmt: skip
    parser.add_argument("--wait", type=int, default=30, help="long-poll hold (s)")
    parser.add_argument(
        "--workers", type=int, default=0,
        help="go: fleet API processes (default 2, more above 32,000 gateways: 20,000 "
        "descriptors per process here)",
    )  # fmt: skip
    parser.add_argument("--connect-rate", type=float, default=400.0, help="go: connections/s")
    parser.add_argument(
        "--seed", choices=("api", "etcd"), default="",
        help="go: EdgeGateways through the API server, or straight into etcd (set-up only; "
        "default above 5,000 gateways)",
    )  # fmt: skip
    parser.add_argument("--rate", type=float, default=0.0, help="offered polls/s (poll mode)")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    parser.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        help="default: 10 s; go: one report interval + 10 s (every session has sent its first report)",
    )
    parser.add_argument("--report-interval", type=float, default=60.0)
    parser.add_argument("--loadgen-processes", type=int, default=1)
    parser.add_argument(
        "--scenarios", default="steady:1,steady:2,rollout:1",
        help="comma-separated scenario:workers",
    )  # fmt: skip
    parser.add_argument(
        "--churn", action="store_true",
        help="cycles of connections opening, polling and closing; RSS after each cycle",
    )  # fmt: skip
    parser.add_argument("--connections", type=int, default=10_000, help="per churn cycle")
    parser.add_argument("--cycles", type=int, default=5, help="churn cycles")
    parser.add_argument("--connect-concurrency", type=int, default=64, help="churn handshakes")
    parser.add_argument(
        "--settle", type=float, default=6.0, help="seconds after a churn cycle before sampling"
    )
    parser.add_argument(
        "--idle", type=float, default=30.0, help="seconds idle after the churn cycles"
    )
    parser.add_argument(
        "--compare-ref", default="",
        help="churn: also run the fleet API of this git ref (e.g. main) in the same run",
    )  # fmt: skip
    args = parser.parse_args()
    if args.churn:
        return churn(args)
    if not args.warmup:
        args.warmup = args.report_interval + 10.0 if args.loadgen == "go" else 10.0
    if args.loadgen == "go":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        if not args.seed:
            args.seed = "etcd" if args.gateways > 5_000 else "api"
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import fleet_loadgen  # type: ignore[import-not-found]

        return int(fleet_loadgen.run(args, sys.modules[__name__]))
    if not args.rate:
        args.rate = 3000.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the control plane is stopped
    work = Path(tempfile.mkdtemp(prefix="modelfleet-bench-"))
    cp = ControlPlane.from_environment()
    cp.start()
    rows = []
    try:
        ns = "bench"
        etcd = [_etcd_in_use(cp)]
        api, tls, names, certs = _enrolled_fleet(cp, work, ns, args.gateways)
        etcd.append(_etcd_in_use(cp))
        from kubernetes import client as kclient

        objects = kclient.CustomObjectsApi(api)
        seed_budget = args.gateways / 150.0  # seconds allowed for seeding statuses
        connect_budget = args.gateways / 50.0  # seconds allowed for the TLS handshakes
        for scenario in args.scenarios.split(","):
            kind, _, workers_s = scenario.partition(":")
            workers = int(workers_s or 1)
            rollout = kind == "rollout"
            spec, status = _release("Progressing" if rollout else "Succeeded", 1 if rollout else 2)
            body = {"apiVersion": "modelfleet.dev/v1alpha1", "kind": "ModelRelease",
                    "metadata": {"name": "detector", "namespace": ns}, "spec": spec}  # fmt: skip
            with contextlib.suppress(Exception):
                objects.delete_namespaced_custom_object(
                    "modelfleet.dev", "v1alpha1", ns, "modelreleases", "detector"
                )
            objects.create_namespaced_custom_object(
                "modelfleet.dev", "v1alpha1", ns, "modelreleases", body
            )
            objects.patch_namespaced_custom_object_status(
                "modelfleet.dev", "v1alpha1", ns, "modelreleases", "detector", {"status": status}
            )
            # The schedule starts at a fixed moment after seeding (connections are set up before
            # it), so seeded timestamps line up with the measured window whatever the set-up took.
            start_at = time.time() + seed_budget + 5.0 + connect_budget
            # ...shifted back by one report interval, so gateways have been falling due (and
            # been written at their next report) for a while when the window opens.
            lead = start_at + args.warmup - args.report_interval - time.time()
            # lastSeen spread over the fleet API's default heartbeat interval (180 s)
            asyncio.run(_seed(cp.kubeconfig, ns, names, rollout, spread=180.0, lead=lead))
            if len(etcd) == 2:
                etcd.append(_etcd_in_use(cp))
                one = objects.get_namespaced_custom_object(
                    "modelfleet.dev", "v1alpha1", ns, "edgegateways", names[0]
                )
                _print_etcd(etcd, args.gateways, len(json.dumps(one, separators=(",", ":"))))
            gw_file = work / "gateways.json"
            gw_file.write_text(json.dumps([
                {"name": n, "cert": str(certs / f"{n}.crt"), "key": str(certs / f"{n}.key"),
                 "report": _report(*(("2.0.0", TARGET) if rollout and _in_cohort(n, 50)
                                     else ("1.0.0", STABLE)))}
                for n in names
            ]))  # fmt: skip
            proc, port = _start_fleet_api(cp, ns, tls, workers, work / f"api-{scenario}.log")
            try:
                observed: dict[str, Any] = {}

                def on_start(
                    until_measure: float, box: dict[str, Any] = observed, pid: int = proc.pid
                ) -> None:
                    box["r"] = _observe(
                        cp.kubeconfig,
                        ns,
                        pid,
                        until_measure,
                        args.duration,
                        others=_control_pids(cp),
                    )

                res = run_load(
                    gw_file, args.gateways, tls["ca"], port, rate=args.rate,
                    duration=args.duration, warmup=args.warmup,
                    report_interval=args.report_interval, processes=args.loadgen_processes,
                    on_start=on_start, start_at=start_at,
                )  # fmt: skip
                writes = observed["r"]
                writes["_thread"].join(timeout=60)
            finally:
                _stop(proc)
            codes = res["codes"]
            bad = sum(v for k, v in codes.items() if not k.endswith((":200", ":304")))
            total = res["completed"]
            late = res["connect_s"] > connect_budget
            rows.append({
                "scenario": kind, "workers": workers,
                "req/s": total / args.duration,
                "poll p50": _pct(res["poll"], 0.50), "poll p99": _pct(res["poll"], 0.99),
                "report p99": _pct(res["report"], 0.99),
                "non-2xx/304": bad, "conn errors": res["errors"],
                "writes/min": writes["writes"] * 60.0 / args.duration,
                "cpu us/req": writes["cpu_s"] / max(1, total) * 1e6,
                "fleet API cores": writes["cpu_s"] / args.duration,
                "kube-apiserver cores": writes.get("kube-apiserver_cpu_s", float("nan"))
                / args.duration,
                "etcd cores": writes.get("etcd_cpu_s", float("nan")) / args.duration,
                "load": writes["load"], "connect s": res["connect_s"],
                "codes": codes, "first_error": res.get("first_error", ""),
                "observe_error": writes.get("error", ""),
                "set-up over budget": late,
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    finally:
        cp.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("req/s: responses completed inside the measured window; latency from the scheduled send")
    print(f"fleet API, {args.gateways} gateways, offered {args.rate:.0f} polls/s + reports every "
          f"{args.report_interval:.0f}s per gateway, {os.cpu_count()} cores, "
          f"{args.duration:.0f}s measured")  # fmt: skip
    head = ("scenario", "workers", "req/s", "poll p50 ms", "poll p99 ms (goal < 50)",
            "report p99 ms", "errors", "EGW writes/min", "fleet API CPU µs/req",
            "fleet API cores", "kube-apiserver cores", "etcd cores", "load avg")  # fmt: skip
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for r in rows:
        print(" | ".join([
            r["scenario"], str(r["workers"]), f"{r['req/s']:.0f}", f"{r['poll p50']:.1f}",
            f"{r['poll p99']:.1f}", f"{r['report p99']:.1f}",
            str(r["non-2xx/304"] + r["conn errors"]), f"{r['writes/min']:.0f}",
            f"{r['cpu us/req']:.0f}", f"{r['fleet API cores']:.2f}",
            f"{r['kube-apiserver cores']:.2f}", f"{r['etcd cores']:.2f}", f"{r['load']:.1f}",
        ]))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

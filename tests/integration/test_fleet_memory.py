"""Nothing is kept per connection: the real fleet API (``modelfleet.fleet.app.run``, in this
process so its objects can be counted) serves hundreds of real mTLS connections that open, poll
and close; afterwards every connection's objects are gone, the Python object count is back at
its baseline, and the freed C-heap memory has been handed back to the system.

Memory *figures* (RSS per cycle) are the benchmark's job: ``bench/fleet_api.py --churn``."""

from __future__ import annotations

import asyncio
import collections
import gc
import socket
import ssl
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelfleet.certs import TLSFiles
from modelfleet.devcluster import ControlPlane
from modelfleet.enrollment import Bundle, enroll_gateways
from modelfleet.enrollment.pki import FleetCA
from modelfleet.fleet import memory
from modelfleet.fleet.app import ServerOptions, run
from modelfleet.fleet.guard import FleetRequestHandler, GuardedSite
from modelfleet.fleet.ratelimit import RateLimit
from modelfleet.fleet.server import ProtocolSettings
from tests.kubekit import with_kube

GATEWAYS = 10
CONNECTIONS = 400  # per test; objects kept per connection would show as hundreds
AT_ONCE = 50


@dataclass
class Served:
    port: int
    handlers: weakref.WeakSet[FleetRequestHandler]
    created: list[int]
    sites: list[GuardedSite]
    releases: list[int]
    client_ctx: dict[str, ssl.SSLContext]


def _server_thread(
    options: ServerOptions, loop_kind: str, state: dict[str, Any]
) -> threading.Thread:
    if loop_kind == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def main() -> None:
        stop = state["stop"] = asyncio.Event()
        state["loop"] = loop

        def on_ready(port: int) -> None:
            state["port"] = port
            ready.set()

        try:
            await run(options, stop=stop, on_ready=on_ready)
        finally:
            ready.set()

    def target() -> None:
        loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert ready.wait(60), "the fleet API did not start"
    assert "port" in state, "the fleet API stopped before serving"
    return thread


@pytest.fixture(params=["uvloop", "asyncio"])
def served(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Served]:
    ca = FleetCA.create()
    issued = ca.issue_server(["localhost", "127.0.0.1"])
    tls = TLSFiles(tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.crt")
    tls.cert.write_bytes(issued.cert_pem)
    tls.key.write_bytes(issued.key_pem)
    tls.ca.write_bytes(ca.cert_pem)
    wanted = [(f"gw-{i}", {"tier": "retail"}) for i in range(GATEWAYS)]
    bundles: list[Bundle] = with_kube(
        control_plane.kubeconfig,
        lambda kube: enroll_gateways(kube, wanted, namespace=namespace, ca=ca),
    )
    clients = {}
    for b in bundles:
        (tmp_path / f"{b.gateway}.crt").write_bytes(b.cert_pem)
        (tmp_path / f"{b.gateway}.key").write_bytes(b.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(tls.ca))
        ctx.load_cert_chain(str(tmp_path / f"{b.gateway}.crt"), str(tmp_path / f"{b.gateway}.key"))
        clients[b.gateway] = ctx

    # Observe, without changing, what the server does: its connections' protocol objects
    # (weak references) and the allocator releases its housekeeping makes.
    handlers: weakref.WeakSet[FleetRequestHandler] = weakref.WeakSet()
    created: list[int] = []
    sites: list[GuardedSite] = []
    releases: list[int] = []
    factory = GuardedSite.protocol_factory

    def recording_factory(self: GuardedSite) -> FleetRequestHandler:
        if not sites:
            sites.append(self)
        handler = factory(self)
        handlers.add(handler)
        created.append(1)
        return handler

    real_release = memory.release_free_memory

    def recording_release() -> bool:
        releases.append(1)
        return real_release()

    monkeypatch.setattr(GuardedSite, "protocol_factory", recording_factory)
    monkeypatch.setattr(memory, "release_free_memory", recording_release)
    options = ServerOptions(
        host="127.0.0.1",
        port=0,
        tls=tls,
        namespace=namespace,
        kubeconfig=control_plane.kubeconfig,
        settings=ProtocolSettings(rate=RateLimit(rate=10_000, burst=10_000)),
    )
    state: dict[str, Any] = {}
    thread = _server_thread(options, request.param, state)
    try:
        yield Served(state["port"], handlers, created, sites, releases, clients)
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(30)


def _read_response(sock: ssl.SSLSocket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed before a response"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    etag = b""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"etag":
            etag = value.strip()
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(head[9:12]), etag


def churn(served: Served, connections: int) -> collections.Counter[int]:
    """``connections`` real mTLS connections, ``AT_ONCE`` open together: each polls (200), polls
    again with the ETag (304) and closes."""
    codes: collections.Counter[int] = collections.Counter()
    names = sorted(served.client_ctx)
    for start in range(0, connections, AT_ONCE):
        socks = []
        for i in range(start, min(connections, start + AT_ONCE)):
            raw = socket.create_connection(("127.0.0.1", served.port), timeout=30)
            socks.append(
                served.client_ctx[names[i % len(names)]].wrap_socket(
                    raw, server_hostname="localhost"
                )
            )
        for sock in socks:
            sock.sendall(b"GET /v1/desired HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, etag = _read_response(sock)
            codes[status] += 1
            sock.sendall(
                b"GET /v1/desired HTTP/1.1\r\nHost: localhost\r\nIf-None-Match: "
                + etag
                + b"\r\n\r\n"
            )
            codes[_read_response(sock)[0]] += 1
        for sock in socks:
            sock.close()
    return codes


def _wait_until(predicate: Any, what: str) -> None:
    event = threading.Event()
    for _ in range(600):
        if predicate():
            return
        event.wait(0.1)
    raise AssertionError(f"never happened: {what}")


@dataclass
class Census:
    objects: collections.Counter[str]
    """Objects the cyclic GC tracks, by type, without the cancelled timers below."""
    frozen: int
    """How many objects are frozen (out of the GC's reach)."""
    cancelled_timers: int
    """Cancelled timers still in an asyncio loop's heap, each with its copied Context.

    aiohttp (3.14.5 here) arms a keep-alive timer as each connection opens and cancels it as the
    connection closes. uvloop frees a cancelled timer at once; asyncio's own loop keeps it in its
    heap until its deadline (75 s) or until cancelled timers are more than half of over 100
    scheduled, when it drops them all. That is the loop's bounded bookkeeping, not something the
    fleet API keeps: counted apart, and checked to stay bounded."""


def _census() -> Census:
    gc.collect()
    objects = gc.get_objects()
    cancelled = [o for o in objects if isinstance(o, asyncio.TimerHandle) and o.cancelled()]
    loop_bookkeeping = {id(h) for h in cancelled} | {
        id(getattr(h, "_context", None)) for h in cancelled
    }
    counts = collections.Counter(
        type(o).__qualname__ for o in objects if id(o) not in loop_bookkeeping
    )
    return Census(counts, gc.get_freeze_count(), len(cancelled))


def test_connections_that_open_poll_and_close_leave_nothing_behind(served: Served) -> None:
    # Warm up with a first round of the same size: every gateway has been seen (its cached
    # desired state, its certificate's expiry and its rate-limit bucket are per gateway, not per
    # connection), the server has once had AT_ONCE connections open, and housekeeping has once
    # given memory back; what that creates once is not per connection.
    warm_up = 2 * AT_ONCE
    assert churn(served, warm_up) == {200: warm_up, 304: warm_up}
    site = served.sites[0]
    _wait_until(lambda: site.closed >= warm_up, "the warm-up connections closed")
    _wait_until(lambda: len(served.releases) > 0, "freed memory released after the warm-up")
    # The first full collection of the test clears what is rebuilt once afterwards (by the
    # next connections): take the baseline after one more small round.
    _census()
    assert churn(served, AT_ONCE) == {200: AT_ONCE, 304: AT_ONCE}
    warm_up += AT_ONCE
    _wait_until(lambda: site.closed >= warm_up, "the second warm-up round closed")
    baseline = _census()
    before, frozen_before = baseline.objects, baseline.frozen
    released_before = len(served.releases)

    codes = churn(served, CONNECTIONS)
    assert codes == {200: CONNECTIONS, 304: CONNECTIONS}
    expected = warm_up + CONNECTIONS
    _wait_until(lambda: site.closed >= expected, "the server saw every connection close")

    # Every connection's protocol object is gone...
    census = _census()
    after, frozen_after = census.objects, census.frozen
    assert len(served.created) == expected
    assert len(served.handlers) == 0
    # ...and so is everything else per connection: no type has more objects than after the
    # first round (the slack is far below one object per connection), nothing was frozen.
    grown = {name: after[name] - before[name] for name in after if after[name] - before[name] > 8}
    assert grown == {}
    assert abs(sum(after.values()) - sum(before.values())) < CONNECTIONS // 10
    assert frozen_after <= frozen_before
    # asyncio's cancelled timers (see Census) stay bounded, far below one per connection.
    assert census.cancelled_timers < CONNECTIONS // 2
    # The freed connection memory was handed back to the system (housekeeping, every 5 s).
    _wait_until(lambda: len(served.releases) > released_before, "freed memory released")


def test_the_reclaimer_releases_after_enough_connections_closed() -> None:
    calls: list[int] = []
    reclaimer = memory.MemoryReclaimer(min_closed=64, release=lambda: calls.append(1) or True)
    assert not reclaimer.tick(0)
    assert not reclaimer.tick(63)  # a steady fleet: nothing to give back
    assert reclaimer.tick(64)
    assert not reclaimer.tick(100)
    assert reclaimer.tick(200)
    assert calls == [1, 1]
    assert reclaimer.releases == 2


def test_free_memory_is_released_on_glibc() -> None:
    import platform

    assert memory.release_free_memory() is (platform.libc_ver()[0] == "glibc")

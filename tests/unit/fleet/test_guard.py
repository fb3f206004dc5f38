"""The listener's bounds on unauthenticated connections, on real sockets over loopback TLS.

The fleet API's own handlers are not involved: an aiohttp application answering ``ok`` behind
:class:`~modelfleet.fleet.guard.GuardedSite` (the integration tests run the real process)."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from modelfleet.certs import TLSFiles
from modelfleet.enrollment.pki import FleetCA
from modelfleet.fleet.app import server_ssl_context
from modelfleet.fleet.guard import ConnectionLimits, FleetRequestHandler, GuardedSite


@dataclass
class Running:
    port: int
    site: GuardedSite
    client: ssl.SSLContext


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _read(request: web.Request) -> web.Response:
    return web.json_response({"read": len(await request.read())})


@web.middleware
async def _mark(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:  # type: ignore[type-arg]
    protocol = request.protocol
    assert isinstance(protocol, FleetRequestHandler)
    protocol.request_started(request.content)
    try:
        return await handler(request)  # type: ignore[operator, no-any-return]
    finally:
        protocol.request_finished()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    folder = tmp_path_factory.mktemp("pki")
    ca = FleetCA.create()
    issued = ca.issue_server(["127.0.0.1"])
    gw = ca.issue_client("gw-1")
    for name, data in (
        ("tls.crt", issued.cert_pem),
        ("tls.key", issued.key_pem),
        ("ca.crt", ca.cert_pem),
        ("c.crt", gw.cert_pem),
        ("c.key", gw.key_pem),
    ):
        (folder / name).write_bytes(data)  # fmt: skip
    server = server_ssl_context(TLSFiles(folder / "tls.crt", folder / "tls.key", folder / "ca.crt"))
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cafile=str(folder / "ca.crt"))
    client.load_cert_chain(str(folder / "c.crt"), str(folder / "c.key"))
    return server, client


def serve(
    pki: tuple[ssl.SSLContext, ssl.SSLContext], limits: ConnectionLimits, loop_kind: str
) -> Iterator[Running]:
    ready: dict[str, object] = {}
    started = threading.Event()
    if loop_kind == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()

    async def main() -> None:
        app = web.Application(middlewares=[_mark])
        app.router.add_get("/", _ok)
        app.router.add_post("/", _read)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = GuardedSite(runner, "127.0.0.1", 0, ssl_context=pki[0], limits=limits)
        await site.start()
        ready["site"] = site
        ready["runner"] = runner
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(main(), loop).result(10)
    site = ready["site"]
    assert isinstance(site, GuardedSite)
    try:
        yield Running(site.port, site, pki[1])
    finally:
        runner = ready["runner"]
        assert isinstance(runner, web.AppRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(params=["asyncio", "uvloop"])
def server(
    pki: tuple[ssl.SSLContext, ssl.SSLContext], request: pytest.FixtureRequest
) -> Iterator[Running]:
    limits = ConnectionLimits(handshake_timeout=2, max_handshakes=16, header_timeout=0.5)
    yield from serve(pki, limits, request.param)


def tls(r: Running) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    return r.client.wrap_socket(raw, server_hostname="127.0.0.1")


def answer(sock: ssl.SSLSocket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (OSError, ssl.SSLError):
            return data
        if not chunk:
            return data
        data += chunk


def test_a_request_is_served(server: Running) -> None:
    with tls(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer(sock).startswith(b"HTTP/1.1 200")


def test_a_parser_error_is_json_and_echoes_nothing(server: Running) -> None:
    with tls(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad<script>: 1\r\n\r\n")
        head, _, body = answer(sock).partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400" and b"application/json" in head
    assert json.loads(body)["error"]["code"] == "bad_request" and b"script" not in body


def test_slow_headers_get_a_408_and_the_connection_is_closed(server: Running) -> None:
    with tls(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        data = answer(sock)  # the server closes it: recv ends
    assert data.startswith(b"HTTP/1.1 408")


def test_an_idle_keep_alive_connection_is_not_cut_by_the_header_timeout_but_its_next_request_is(
    server: Running,
) -> None:
    with tls(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        assert not select.select([sock], [], [], 1.5)[0]  # idle: still open after the timeout
        sock.sendall(b"GET / HTTP/1.1\r\n")  # a next request that never finishes its headers
        assert answer(sock).startswith(b"HTTP/1.1 408")


def test_a_body_arriving_after_its_headers_does_not_arm_the_header_timeout(
    server: Running,
) -> None:
    """A report whose body comes in a later TLS record than its headers (the handler already
    reading it): after the answer the connection is idle, not a next request left unfinished,
    so it stays open past the header timeout and its next request is served."""
    with tls(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        time.sleep(0.2)  # the handler starts and waits for the body
        sock.sendall(b"hello")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        if select.select([sock], [], [], 1.5)[0]:  # idle: nothing may come after the timeout
            pytest.fail(f"the idle connection was answered: {answer(sock)[:40]!r}")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_a_flood_of_silent_connections_is_bounded_and_a_gateway_gets_through(
    server: Running,
) -> None:
    flood = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(300)]
    try:
        with tls(server) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert answer(sock).startswith(b"HTTP/1.1 200")
        assert server.site.pending_handshakes <= 16
        assert server.site.evicted > 0
        # The oldest silent connections were closed by the server.
        closed = select.select(flood, [], [], 5)[0]
        assert closed and all(s.recv(1) == b"" for s in closed)
    finally:
        for s in flood:
            s.close()


def test_a_silent_connection_is_closed_after_the_handshake_timeout(server: Running) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        assert sock.recv(1) == b""  # closed by the server (the recv timeout is far longer)

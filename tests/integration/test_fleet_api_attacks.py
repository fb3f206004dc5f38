"""Attacks on the fleet API, performed for real: the real process over real mTLS on loopback,
against the real API server (issue 10, items 10-13).

* a report the operator could not read back (``window: "0.5s"``) is refused, nothing written;
* input rules hold on the whole value (a trailing newline is not a version), a repeated query
  parameter is refused, and aiohttp's own errors are JSON that echo nothing;
* an EdgeGateway in another namespace that copies a gateway's certificate fingerprint refuses
  both (a clear 403, Events naming the others) and deleting it restores the gateway at once;
* a flood of TCP connections that never send a ClientHello does not lock a real gateway out,
  and a connection that trickles its headers is cut off after the header timeout.
"""

from __future__ import annotations

import json
import resource
import secrets
import select
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from modelfleet.devcluster import ControlPlane
from modelfleet.fleet.process import FleetAPIProcess, start_fleet_api

from .test_fleet_api import Fleet, _report, _wait_for, running_fleet

pytestmark = pytest.mark.cluster

LIMITS = ["--rate-limit", "1000", "--rate-burst", "1000"]


@pytest.fixture(scope="module")
def fleet(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with running_fleet(control_plane, tmp_path_factory.mktemp("attacks")) as f:
        yield f


def tls_socket(fleet: Fleet, name: str, port: int) -> ssl.SSLSocket:
    """A raw TLS connection presenting gateway ``name``'s certificate."""
    ctx = ssl.create_default_context(cafile=str(fleet.folder / name / "ca.crt"))
    ctx.load_cert_chain(
        str(fleet.folder / name / "client.crt"), str(fleet.folder / name / "client.key")
    )
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def read_response(sock: ssl.SSLSocket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def own_server(fleet: Fleet, name: str, *extra: str) -> FleetAPIProcess:
    return start_fleet_api(
        kubeconfig=fleet.cp.kubeconfig, namespace=fleet.ns,
        log_path=fleet.folder / f"{name}.log", extra_args=[*LIMITS, *extra],
    )  # fmt: skip


# ----------------------------------------------------------------------------- item 10


def test_a_report_the_operator_could_not_read_is_refused_and_nothing_is_written(
    fleet: Fleet,
) -> None:
    fleet.enroll("gw-window", tier="retail")
    _wait_for(lambda: fleet.get("gw-window").status_code == 200)
    before = fleet.status("gw-window")
    body = _report(state="Failed")
    body["health"][0]["window"] = "0.5s"
    resp = fleet.report("gw-window", body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json()["error"]["field"] == "health[0].window"
    assert fleet.status("gw-window") == before
    body["health"][0]["window"] = "500ms"  # what the agent sends for half a second
    assert fleet.report("gw-window", body).status_code == 200


# ----------------------------------------------------------------------------- item 13


@pytest.mark.parametrize(
    ("where", "mutate"),
    [
        ("models[0].version", lambda d: d["models"][0].update(version="2.0.0\n")),
        (
            "models[0].digest",
            lambda d: d["models"][0].update(digest=d["models"][0]["digest"] + "\n"),
        ),
        ("health[0].window", lambda d: d["health"][0].update(window="60s\n")),
        ("agentVersion", lambda d: d.update(agentVersion="0.1.0\n")),
        ("gateway", lambda d: d.update(gateway="gw-b\n")),
    ],
)
def test_a_value_with_a_trailing_newline_is_refused(fleet: Fleet, where: str, mutate: Any) -> None:
    before = fleet.status("gw-b")
    body = _report()
    mutate(body)
    resp = fleet.report("gw-b", body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["field"] == where
    assert fleet.status("gw-b") == before


@pytest.mark.parametrize(
    "query",
    ["gateway=gw-b&gateway=gw-b", "gateway=gw-b&gateway=gw-a", "wait=1&wait=1", "gateway=gw-b%0A"],
)
def test_a_repeated_or_newline_query_parameter_is_400(fleet: Fleet, query: str) -> None:
    with fleet.session("gw-b") as s:
        resp = s.get(f"{fleet.server.url}/v1/desired?{query}", timeout=10)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_parameter"


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /v1/desired HTTP/1.1\r\nHost: x\r\nBad<script>alert(1)</script>: y\r\n\r\n",
        b"GET /v1/<script>alert(1)</script> HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /v1/desired HTTP/1.1\r\nHost: x\r\nX-<script>: " + b"a" * 9000 + b"\r\n\r\n",
        b"<script>alert(1)</script>\r\n\r\n",
        b"POST /v1/report HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n"
        b"Content-Type: application/json\r\n\r\n{}",
    ],
    ids=["bad-header-name", "bad-version", "header-too-long", "not-http", "two-lengths"],
)
def test_malformed_http_is_answered_in_json_and_echoes_nothing(fleet: Fleet, raw: bytes) -> None:
    with tls_socket(fleet, "gw-b", fleet.server.port) as sock:
        sock.sendall(raw)
        status, headers, body = read_response(sock)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == "bad_request"
    assert b"script" not in body and b"aaaa" not in body


# ----------------------------------------------------------------------------- item 11


def test_a_fingerprint_squatter_in_another_namespace_cannot_lock_a_gateway_out(
    fleet: Fleet,
) -> None:
    victim = fleet.enroll("gw-victim", tier="retail")
    other = f"squat-{secrets.token_hex(3)}"
    server = start_fleet_api(
        kubeconfig=fleet.cp.kubeconfig, namespace=fleet.ns, log_path=fleet.folder / "squat.log",
        extra_args=[*LIMITS, "--all-namespaces", "--tls-namespace", fleet.ns],
    )  # fmt: skip
    try:
        with fleet.session("gw-victim") as s, fleet.cp.namespace(other):

            def code() -> tuple[int, str]:
                resp = s.get(server.url + "/v1/desired", timeout=10)
                return resp.status_code, resp.json().get("error", {}).get("code", "")

            _wait_for(lambda: code()[0] == 200)
            squatter = {
                "apiVersion": "modelfleet.dev/v1alpha1", "kind": "EdgeGateway",
                "metadata": {"name": "impostor", "namespace": other},
                "spec": {"certificateFingerprint": victim.fingerprint},
            }  # fmt: skip
            fleet.cp.kubectl("apply", "-f", "-", input=json.dumps(squatter))
            _wait_for(lambda: code()[0] == 403)
            during = code()
            fleet.cp.kubectl("delete", "egw", "impostor", "-n", other)
            _wait_for(lambda: code()[0] == 200)  # at once, no restart
            assert during == (403, "duplicate_fingerprint")

            def events(ns: str, name: str) -> list[dict[str, Any]]:
                out = fleet.cp.kubectl(
                    "get", "events", "-n", ns, "-o", "json",
                    "--field-selector", f"involvedObject.name={name}",
                )  # fmt: skip
                return list(json.loads(out.stdout)["items"])

            def reasons(ns: str, name: str) -> dict[str, str]:
                return {e["reason"]: e["message"] for e in events(ns, name)}

            _wait_for(lambda: "DuplicateFingerprintResolved" in reasons(fleet.ns, "gw-victim"))
            assert f"{other}/impostor" in reasons(fleet.ns, "gw-victim")["DuplicateFingerprint"]
            assert f"{fleet.ns}/gw-victim" in reasons(other, "impostor")["DuplicateFingerprint"]
            (warning,) = [e for e in events(fleet.ns, "gw-victim") if e["type"] == "Warning"]
            assert warning["involvedObject"]["kind"] == "EdgeGateway"
    finally:
        server.stop()


# ----------------------------------------------------------------------------- item 12


class SilentFlood:
    """Keeps up to ``size`` TCP connections to ``port`` open that never send a byte, opening new
    ones as the server drops old ones, until stopped or ``seconds`` pass (bounded both ways)."""

    def __init__(self, port: int, size: int, seconds: float) -> None:
        self.port, self.size, self.seconds = port, size, seconds
        self.open: dict[int, socket.socket] = {}
        self.opened = self.dropped = 0
        self._stop = threading.Event()
        self._poll = select.epoll()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            while len(self.open) < self.size and not self._stop.is_set():
                try:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
                except OSError:
                    break
                self.open[sock.fileno()] = sock
                self._poll.register(sock, select.EPOLLIN | select.EPOLLRDHUP)
                self.opened += 1
            for fd, _ in self._poll.poll(0.05):  # readable and silent: the server closed it
                sock = self.open.pop(fd)
                self._poll.unregister(sock)
                sock.close()
                self.dropped += 1

    def __enter__(self) -> SilentFlood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        for sock in self.open.values():
            sock.close()
        self._poll.close()


@pytest.fixture
def flood_server(fleet: Fleet) -> Iterator[FleetAPIProcess]:
    server = own_server(fleet, "flood", "--handshake-timeout", "3", "--max-handshakes", "256")
    assert server.proc is not None
    # A container-like descriptor limit for the server process only (the flood is bigger).
    resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (1024, 1024))
    try:
        yield server
    finally:
        server.stop()


def test_a_gateway_gets_through_a_flood_of_connections_that_never_say_hello(
    fleet: Fleet, flood_server: FleetAPIProcess
) -> None:
    with SilentFlood(flood_server.port, size=2000, seconds=90) as flood:
        _wait_for(lambda: flood.opened >= 2000, attempts=600)
        assert flood._thread.is_alive()
        with fleet.session("gw-b") as s:
            resp = s.get(flood_server.url + "/v1/desired", timeout=15)
        assert resp.status_code == 200, resp.text
        _wait_for(lambda: flood.dropped > 0, attempts=600)  # the server sheds the flood
    with fleet.session("gw-b") as s:  # and keeps serving afterwards
        assert s.get(flood_server.url + "/v1/desired", timeout=15).status_code == 200
    metrics = urllib.request.urlopen(flood_server.metrics_url + "/metrics", timeout=10).read()
    evicted = [
        float(line.rsplit(b" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(b'modelfleet_fleet_api_handshakes_dropped_total{reason="evicted"}')
    ]
    assert evicted and evicted[0] > 0


def test_headers_trickled_slowly_are_cut_off_with_a_json_408(fleet: Fleet) -> None:
    server = own_server(fleet, "slow", "--header-timeout", "2")
    try:
        with tls_socket(fleet, "gw-b", server.port) as sock:
            sock.sendall(b"GET /v1/desired HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sock.setblocking(False)
            answer, closed = b"", False
            deadline = time.monotonic() + 60  # bound of the test, far above the timeout
            while not closed and time.monotonic() < deadline:
                try:
                    sock.send(b"X")  # one byte of a header name every half second
                except ssl.SSLWantWriteError:
                    pass
                except OSError:
                    closed = True
                    break
                if select.select([sock], [], [], 0.5)[0]:
                    try:
                        chunk = sock.recv(65536)
                    except ssl.SSLWantReadError:  # TLS 1.3 session tickets, no data yet
                        continue
                    except OSError:
                        chunk = b""
                    answer += chunk
                    closed = not chunk
        assert closed, "the server kept a connection trickling its headers"
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
    finally:
        server.stop()

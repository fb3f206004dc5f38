"""Two fleet API replicas (real processes, real HTTPS) serving the same gateways.

Both list and watch the same API server: the same gateway gets the same desired state and ETag
from either, a gateway moving between them while a release advances sees no step back, reports
written through both land in order, and SIGTERM ends long polls with an answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from modelfleet.devcluster import ControlPlane
from modelfleet.fleet.process import FleetAPIProcess, start_fleet_api

from .test_fleet_api import STABLE, TARGET, Fleet, _report, _wait_for, running_fleet

pytestmark = pytest.mark.cluster


@contextlib.contextmanager
def _two_replicas(
    control_plane: ControlPlane, tmp_path: Path, kubeconfig: Path | None = None
) -> Iterator[tuple[Fleet, FleetAPIProcess, FleetAPIProcess]]:
    """A fleet and a second replica (with ``kubeconfig``: reaching the API server through it)."""
    with running_fleet(control_plane, tmp_path) as fleet:
        second = start_fleet_api(
            kubeconfig=kubeconfig or control_plane.kubeconfig, namespace=fleet.ns,
            log_path=tmp_path / "fleet-api-2.log",
            extra_args=["--rate-limit", "1000", "--rate-burst", "1000"],
        )  # fmt: skip
        try:
            yield fleet, fleet.server, second
        finally:
            second.stop()


@pytest.fixture
def pair(
    control_plane: ControlPlane, tmp_path: Path
) -> Iterator[tuple[Fleet, FleetAPIProcess, FleetAPIProcess]]:
    with _two_replicas(control_plane, tmp_path) as replicas:
        yield replicas


def _get(fleet: Fleet, server: FleetAPIProcess, name: str, **kw: Any) -> requests.Response:
    with fleet.session(name) as s:
        return s.get(server.url + "/v1/desired", timeout=70, **kw)


def _post(fleet: Fleet, server: FleetAPIProcess, name: str, body: Any) -> requests.Response:
    with fleet.session(name) as s:
        return s.post(server.url + "/v1/report", json=body, timeout=30)


def _without_poll_after(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "pollAfterSeconds"}  # jittered per answer


def test_both_replicas_give_the_same_desired_state_and_etag(
    pair: tuple[Fleet, FleetAPIProcess, FleetAPIProcess],
) -> None:
    fleet, one, two = pair
    for name in ("gw-a", "gw-b"):
        a, b = _get(fleet, one, name), _get(fleet, two, name)
        assert (a.status_code, b.status_code) == (200, 200)
        assert a.headers["ETag"] == b.headers["ETag"]
        assert _without_poll_after(a.json()) == _without_poll_after(b.json())
        # The ETag one replica gave is current at the other: 304, nothing to do.
        again = _get(fleet, two, name, headers={"If-None-Match": a.headers["ETag"]})
        assert again.status_code == 304


def test_a_gateway_moving_between_replicas_mid_rollout_never_steps_back(
    pair: tuple[Fleet, FleetAPIProcess, FleetAPIProcess],
) -> None:
    fleet, one, two = pair
    seen: list[tuple[int, str]] = []
    stop = threading.Event()

    def agent() -> None:
        etag = ""
        i = 0
        while not stop.is_set():
            server = (one, two)[i % 2]  # every poll goes to the other replica
            i += 1
            resp = _get(fleet, server, "gw-b", params={"wait": "1"},
                        headers={"If-None-Match": etag} if etag else {})  # fmt: skip
            if resp.status_code == 200:
                etag = resp.headers["ETag"]
                seen.append((i % 2, resp.json()["models"][0]["version"]))

    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    try:
        _wait_for(lambda: bool(seen))
        fleet.set_release("Progressing", 1)  # gw-b's cohort (step 1: everybody) gets 2.0.0
        _wait_for(lambda: any(v == "2.0.0" for _, v in seen))
        time.sleep(2)  # a few more polls to each replica
    finally:
        stop.set()
        thread.join(10)
        fleet.set_release("Progressing", 0)
    versions = [v for _, v in seen]
    first_new = versions.index("2.0.0")
    assert set(versions[:first_new]) == {"1.0.0"} and set(versions[first_new:]) == {"2.0.0"}, (
        f"instructions stepped back: {seen}"
    )


def test_reports_through_both_replicas_land_in_order(
    pair: tuple[Fleet, FleetAPIProcess, FleetAPIProcess],
) -> None:
    fleet, one, two = pair
    fleet.enroll("gw-r", tier="retail")
    for server in (one, two):
        _wait_for(lambda s=server: _get(fleet, s, "gw-r").status_code == 200)
    states = ["Downloading", "Verifying", "Active", "Downloading", "Active"]
    for i, state in enumerate(states):
        server = (one, two)[i % 2]
        version, digest = ("2.0.0", TARGET) if i < 3 else ("1.0.0", STABLE)
        resp = _post(fleet, server, "gw-r", _report(version=version, digest=digest, state=state))
        assert resp.status_code == 200 and resp.json()["written"] is True, resp.text
        model = fleet.status("gw-r")["models"][0]
        assert (model["version"], model["state"]) == (version, state), f"report {i} lost"
    # The same report again, through either replica, is coalesced: both see the last write.
    for server in (one, two):
        _wait_for(
            lambda s=server: (
                _post(fleet, s, "gw-r", _report("1.0.0", STABLE, "Active")).json()
                == {"written": False, "reasons": []}
            )
        )


def test_sigterm_ends_long_polls_with_an_answer(
    pair: tuple[Fleet, FleetAPIProcess, FleetAPIProcess],
) -> None:
    fleet, one, two = pair
    etag = _get(fleet, two, "gw-b").headers["ETag"]
    result: dict[str, Any] = {}

    def poll() -> None:
        try:
            result["r"] = _get(
                fleet, two, "gw-b", params={"wait": "60"}, headers={"If-None-Match": etag}
            )
        except requests.RequestException as exc:
            result["error"] = exc

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(1.0)  # the poll is parked
    assert thread.is_alive()
    two.stop()  # SIGTERM
    thread.join(20)
    assert not thread.is_alive(), "the long poll outlived the process"
    assert "error" not in result, result.get("error")
    assert result["r"].status_code == 304 and result["r"].headers["ETag"] == etag
    assert two.proc is not None and two.proc.returncode == 0, two.tail()
    # The other replica goes on serving the gateway.
    assert _get(fleet, one, "gw-b").status_code == 200


def test_sigterm_lets_a_report_in_flight_finish_and_be_written(
    pair: tuple[Fleet, FleetAPIProcess, FleetAPIProcess],
) -> None:
    """A report whose body is still arriving when SIGTERM comes is answered and written (no
    report is lost to a rolling update)."""
    fleet, _, two = pair
    fleet.enroll("gw-t", tier="retail")
    _wait_for(lambda: _get(fleet, two, "gw-t").status_code == 200)
    keys = fleet.folder / "gw-t"
    ctx = ssl.create_default_context(cafile=str(keys / "ca.crt"))
    ctx.load_cert_chain(str(keys / "client.crt"), str(keys / "client.key"))
    body = json.dumps(_report(version="2.0.0", digest=TARGET, state="Verifying")).encode()
    head = (
        "POST /v1/report HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    raw = socket.create_connection(("127.0.0.1", two.port), timeout=30)
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        conn.sendall(head + body[:10])
        time.sleep(0.5)  # the handler is reading the body
        assert two.proc is not None
        os.killpg(two.proc.pid, signal.SIGTERM)
        time.sleep(1.0)  # the process is shutting down
        conn.sendall(body[10:])
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"200", answer
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["written"] is True
    two.proc.wait(20)
    assert two.proc.returncode == 0, two.tail()
    assert fleet.status("gw-t")["models"][0]["state"] == "Verifying"


def _watch_states(fleet: Fleet, name: str, seen: list[tuple[str, str]], ready: threading.Event,
                  stop: threading.Event) -> None:  # fmt: skip
    """Every (version, state) the EdgeGateway's status passes through, from a real watch."""
    from kubernetes import client, watch

    from modelfleet.kube import api_client, load_access

    api = client.CustomObjectsApi(api_client(load_access(fleet.cp.kubeconfig)))
    w = watch.Watch()
    ready.set()
    with contextlib.suppress(Exception):  # the stream is cut when the test ends
        _follow(w, api, fleet, name, seen=seen, stop=stop)


def _follow(w: Any, api: Any, fleet: Fleet, name: str, *, seen: list[tuple[str, str]],
            stop: threading.Event) -> None:  # fmt: skip
    last: tuple[str, str] | None = None
    for event in w.stream(
        api.list_namespaced_custom_object, "modelfleet.dev", "v1alpha1", fleet.ns, "edgegateways",
        field_selector=f"metadata.name={name}", timeout_seconds=120,
    ):  # fmt: skip
        models = ((event["object"].get("status") or {}).get("models")) or []
        if models:
            now = (models[0]["version"], models[0]["state"])
            if now != last:
                seen.append(now)
                last = now
        if stop.is_set():
            w.stop()


class SlowLink:
    """A loopback TCP relay to the API server that delivers every byte from the server ``delay``
    seconds late: the network of a replica far from the API server (its watch lags by that much).
    The bytes are not read or changed (TLS passes through end to end)."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, server, 0.0), daemon=True).start()
            threading.Thread(
                target=self._pipe, args=(server, client, self.delay), daemon=True
            ).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, delay: float) -> None:
        chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def send() -> None:
            while True:
                due, data = chunks.get()
                time.sleep(max(0.0, due - time.monotonic()))
                try:
                    dst.sendall(data) if data else dst.shutdown(socket.SHUT_WR)
                except OSError:
                    return
                if not data:
                    return

        threading.Thread(target=send, daemon=True).start()
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            chunks.put((time.monotonic() + delay, data))
            if not data:
                return

    def kubeconfig(self, original: Path, folder: Path) -> Path:
        doc = yaml.safe_load(original.read_text())
        for cluster in doc["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        path = folder / "slow-kubeconfig"
        path.write_text(yaml.safe_dump(doc))
        return path

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def far_pair(
    control_plane: ControlPlane, tmp_path: Path
) -> Iterator[tuple[Fleet, FleetAPIProcess, FleetAPIProcess]]:
    """Two replicas; the second reaches the API server over a link with 0.3 s of latency."""
    server = urlsplit(control_plane.server)
    link = SlowLink((server.hostname or "127.0.0.1", server.port or 443), delay=0.3)
    try:
        with _two_replicas(
            control_plane, tmp_path, link.kubeconfig(control_plane.kubeconfig, tmp_path)
        ) as replicas:
            yield replicas
    finally:
        link.close()


@pytest.mark.parametrize("sequenced", [False, True], ids=["written-first", "queued-sequenced"])
def test_a_gateway_alternating_replicas_loses_and_reorders_no_report(
    far_pair: tuple[Fleet, FleetAPIProcess, FleetAPIProcess], sequenced: bool
) -> None:
    """The race of two writers, for real: a gateway sends each report to the other replica, back
    to back, alternating between two states, and one replica's link to the API server is slow,
    so it plans on a copy its watch has not yet brought up to date with the other's write, a
    copy that already shows the state it is told. It must neither coalesce that report away (a
    lost state) nor write over a status it did not see. Every report changes the state, so every
    one is written, and the status passes through the reports' states in the order sent."""
    fleet, one, two = far_pair
    fleet.enroll("gw-x", tier="retail")
    for server in (one, two):
        _wait_for(lambda s=server: _get(fleet, s, "gw-x").status_code == 200)
    a = _report(version="2.0.0", digest=TARGET, state="Downloading")
    b = _report(version="1.0.0", digest=STABLE, state="Active")
    seen: list[tuple[str, str]] = []
    ready, stop = threading.Event(), threading.Event()
    watcher = threading.Thread(
        target=_watch_states, args=(fleet, "gw-x", seen, ready, stop), daemon=True
    )
    watcher.start()
    ready.wait(10)
    sessions = (fleet.session("gw-x"), fleet.session("gw-x"))
    answers = []
    try:
        for i in range(40):
            server = (one, two)[i % 2]
            body = dict((a, b)[i % 2])
            if sequenced:  # every report is answered written: true, so each is numbered next
                body["sequence"] = {"session": "attack-run", "number": i + 1}
            resp = sessions[i % 2].post(server.url + "/v1/report", json=body, timeout=30)
            answers.append((i, resp.status_code, resp.json().get("written")))
    finally:
        for s in sessions:
            s.close()
    expected = [("2.0.0", "Downloading"), ("1.0.0", "Active")] * 20
    with contextlib.suppress(AssertionError):  # the watch may still be delivering
        # queued writes land behind the answers, each after the lagging watch shows the last one
        _wait_for(lambda: len(seen) >= len(expected), attempts=600 if sequenced else 100)
    stop.set()
    assert [x for x in answers if x[1:] != (200, True)] == [], "reports coalesced away"
    assert seen == expected, "the status skipped or reordered a report"
    model = fleet.status("gw-x")["models"][0]
    assert (model["version"], model["state"]) == ("1.0.0", "Active")

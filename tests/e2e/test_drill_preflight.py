"""The parts of ``modelfleet drill --deployed`` that speak to the cluster, on the session's real
API server: the operator-crash fault deletes exactly the Pods its label selector names and waits
until the Lease is held by a new identity; the preflight names each problem in one actionable
line (no Lease, a Lease nobody renews, a fleet API that does not answer or presents a certificate
of another CA, a namespace no operator watches). A real TLS server on loopback plays the fleet
API's handshake with a certificate of the fleet CA (the whole deployed path runs in
test_drill_deployed.py)."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import socket
import socketserver
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelfleet.devcluster import ControlPlane
from modelfleet.drill.deployed import (
    FLEET_CA_SECRET,
    DeployedError,
    DeployedSettings,
    LeaseWatch,
    fleet_api_answers,
    kill_operator,
    leader_live,
    operator_pods,
    preflight,
    wait_lease_taken,
)
from modelfleet.enrollment.pki import FleetCA
from modelfleet.kube import api_client, load_access

pytestmark = pytest.mark.cluster

SELECTOR = "app.kubernetes.io/name=modelfleet-operator"


@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[Any]:
    api = api_client(load_access(control_plane.kubeconfig))
    try:
        yield api
    finally:
        api.close()


def put_lease(api: Any, namespace: str, holder: str, renewed: dt.datetime, duration: int) -> None:
    coordination: Any = client.CoordinationV1Api(api)
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "modelfleet-operator"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                 "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
    }  # fmt: skip
    try:
        coordination.create_namespaced_lease(namespace, body)
    except client.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
        coordination.patch_namespaced_lease("modelfleet-operator", namespace, body)


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"automountServiceAccountToken": False,
                 "containers": [{"name": "c", "image": "localhost/none:0"}]},
    }  # fmt: skip


def test_operator_crash_deletes_the_selected_pods_and_waits_for_a_new_lease_holder(
    api: Any, namespace: str
) -> None:
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "default"}})
    for name in ("modelfleet-operator-a", "modelfleet-operator-b"):
        core.create_namespaced_pod(
            namespace, pod(name, {"app.kubernetes.io/name": "modelfleet-operator"})
        )
    core.create_namespaced_pod(namespace, pod("bystander", {"app.kubernetes.io/name": "other"}))
    now = dt.datetime.now(dt.UTC)
    put_lease(api, namespace, "modelfleet-operator-a_1234", now, 15)
    s = DeployedSettings(fleet_url="https://127.0.0.1:1", operator_namespace=namespace,
                         operator_selector=SELECTOR)  # fmt: skip
    assert sorted(operator_pods(api, s)) == ["modelfleet-operator-a", "modelfleet-operator-b"]

    what, before = kill_operator(api, s)
    assert before == "modelfleet-operator-a_1234"
    assert "modelfleet-operator-a" in what and "modelfleet-operator-b" in what
    left = [p.metadata.name for p in core.list_namespaced_pod(namespace).items]
    assert left == ["bystander"]

    # Nobody took the Lease over: the wait ends in an error naming the holder.
    with pytest.raises(DeployedError, match="holder: modelfleet-operator-a_1234"):
        wait_lease_taken(api, s, before, timeout=1)

    # A replacement takes it (what the recreated Pod's operator does): the wait returns it.
    def new_leader() -> None:
        time.sleep(0.5)
        put_lease(api, namespace, "modelfleet-operator-c_5678", dt.datetime.now(dt.UTC), 15)

    threading.Thread(target=new_leader, daemon=True).start()
    assert wait_lease_taken(api, s, before, timeout=60) == "modelfleet-operator-c_5678"

    # No Pods left to delete and no restart command: the fault cannot be made.
    core.delete_namespaced_pod("bystander", namespace, grace_period_seconds=0)
    with pytest.raises(DeployedError, match=f"no Pods match {SELECTOR} in {namespace}"):
        kill_operator(api, s)


def test_operator_crash_by_restart_command_runs_it_and_reports_its_failure(
    api: Any, namespace: str, tmp_path: Path
) -> None:
    put_lease(api, namespace, "op_1", dt.datetime.now(dt.UTC), 15)
    marker = tmp_path / "restarted"
    s = DeployedSettings(fleet_url="https://127.0.0.1:1", operator_namespace=namespace,
                         operator_restart_command=f"touch {marker}")  # fmt: skip
    what, before = kill_operator(api, s)
    assert marker.exists() and before == "op_1" and "--operator-restart-command" in what
    failing = DeployedSettings(fleet_url="https://127.0.0.1:1", operator_namespace=namespace,
                               operator_restart_command="echo no such unit >&2; exit 3")  # fmt: skip
    with pytest.raises(DeployedError, match="exited 3: no such unit"):
        kill_operator(api, failing)


class TLSServer(socketserver.ThreadingTCPServer):
    """Completes TLS handshakes on loopback with a server certificate of ``ca`` (client
    certificates required, as the fleet API does), then closes."""

    daemon_threads = True

    def __init__(self, ca: FleetCA, sans: tuple[str, ...]) -> None:
        issued = ca.issue_server(sans)
        folder = Path(tempfile.mkdtemp())
        (folder / "tls.crt").write_bytes(issued.cert_pem)
        (folder / "tls.key").write_bytes(issued.key_pem)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(folder / "tls.crt", folder / "tls.key")
        self.ctx.load_verify_locations(cadata=ca.cert_pem.decode())
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        super().__init__(("127.0.0.1", 0), _Handshake)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handshake(socketserver.BaseRequestHandler):
    server: TLSServer

    def handle(self) -> None:
        with contextlib.suppress(ssl.SSLError, OSError):
            self.server.ctx.wrap_socket(self.request, server_side=True).close()


def put_fleet_ca(api: Any, namespace: str, ca: FleetCA) -> None:
    core: Any = client.CoreV1Api(api)
    data = {"ca.crt": base64.b64encode(ca.cert_pem).decode()}
    core.create_namespaced_secret(namespace, {"metadata": {"name": FLEET_CA_SECRET}, "data": data})


def test_preflight_names_each_problem_in_one_actionable_line(api: Any, namespace: str) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed = free.getsockname()[1]
    free.close()
    s = DeployedSettings(fleet_url=f"https://127.0.0.1:{closed}", operator_namespace=namespace,
                         probe_timeout=2)  # fmt: skip

    # Nothing deployed: no Lease, no fleet CA; each said once, the probe not tried.
    problems = preflight(api, namespace, s)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"no Lease {namespace}/modelfleet-operator: is the operator")
    assert problems[1].startswith(f"cannot read the fleet CA (Secret {namespace}/{FLEET_CA_SECRET}")

    # A Lease whose holder stopped renewing an hour ago.
    put_lease(api, namespace, "gone_1", dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), 3)
    stale = leader_live(api, s)
    assert stale is not None and "not since: the operator is not live" in stale
    put_lease(api, namespace, "op_1", dt.datetime.now(dt.UTC), 15)
    assert leader_live(api, s) is None

    # The fleet API: nobody listening; a server of another CA; the real thing.
    ca = FleetCA.create()
    put_fleet_ca(api, namespace, ca)
    down = fleet_api_answers(api, s)
    assert down is not None and down.startswith(f"the fleet API at {s.fleet_url} does not answer")
    other = TLSServer(FleetCA.create(), ("127.0.0.1",))
    right = TLSServer(ca, ("127.0.0.1",))
    try:
        s_other = DeployedSettings(fleet_url=f"https://127.0.0.1:{other.port}",
                                   operator_namespace=namespace)  # fmt: skip
        wrong = fleet_api_answers(api, s_other)
        assert wrong is not None and "does not present a certificate of the fleet CA" in wrong
        s_name = DeployedSettings(fleet_url=f"https://localhost:{right.port}",
                                  operator_namespace=namespace)  # fmt: skip
        named = fleet_api_answers(api, s_name)  # its certificate names 127.0.0.1 only
        assert named is not None and "give a --fleet-api URL whose host is in" in named
        s_ok = DeployedSettings(fleet_url=f"https://127.0.0.1:{right.port}",
                                operator_namespace=namespace, probe_timeout=2)  # fmt: skip
        assert fleet_api_answers(api, s_ok) is None

        # Everything else holds, but no operator watches this namespace: the probe says so.
        problems = preflight(api, namespace, s_ok)
        assert len(problems) == 1, problems
        assert problems[0].startswith(
            f"the operator did not act on a ModelRelease in namespace {namespace} within 2s"
        )
        assert f"--namespace={namespace}" in problems[0]
        releases: Any = client.CustomObjectsApi(api)
        left = releases.list_namespaced_custom_object(
            "modelfleet.dev", "v1alpha1", namespace, "modelreleases"
        )["items"]
        assert left == []  # the probe is gone
    finally:
        other.close()
        right.close()


def test_a_drill_notices_when_the_deployed_operator_stops_renewing_its_lease(
    api: Any, namespace: str
) -> None:
    s = DeployedSettings(fleet_url="https://127.0.0.1:1", operator_namespace=namespace)
    put_lease(api, namespace, "op_1", dt.datetime.now(dt.UTC), 1)
    watch = LeaseWatch(api, s, every=0)
    watch.check()
    put_lease(api, namespace, "op_1", dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1), 1)
    watch.check()  # renewed: fine
    deadline = time.monotonic() + 60
    with pytest.raises(DeployedError) as stopped:
        while time.monotonic() < deadline:  # nobody renews any more
            watch.check()
            time.sleep(0.5)
    assert str(stopped.value).startswith(
        f"the deployed operator stopped renewing its Lease {namespace}/modelfleet-operator "
        "(holder op_1, last renewed "
    )
    assert str(stopped.value).endswith("it is down and was not restarted; check its Pods and logs")

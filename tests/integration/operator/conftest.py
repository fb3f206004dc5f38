"""Fixtures for the operator's integration tests (the helpers they use live in modules:
:mod:`.cluster`, :mod:`.operatorproc`, :mod:`.artifacts`, :mod:`.fleet`, :mod:`.reports`).

* ``api``: :class:`~.cluster.Api` for the test's namespace.
* ``operator`` (function scope): ``python -m modelfleet operator --namespace NS --interval 1
  --report-interval 1`` against the session's control plane, opted in to what the tests serve
  (``file://`` under the test's folder, plain ``http://`` on loopback); ``.kill()`` (SIGKILL),
  ``.start()``, ``.writes()``.
* ``artifacts``: signs model versions with one key, serves them as ``file://`` URIs, and applies
  the matching cluster-scoped TrustPolicy (a unique name per test).
* ``fleet_api`` (module scope): the real fleet API for every namespace (:mod:`.fleet`).
* ``fleet``: EdgeGateways enrolled for real in the test's namespace and played by simulated
  agents through that fleet API, with a behaviour per version (:class:`~.fleet.SimulatedFleet`);
  in a module that says why (``STATUS_WRITTEN_BECAUSE``), status written directly instead.
* ``written_fleet``: EdgeGateway status written directly (:class:`~.reports.StatusWriter`).
* ``http_base``: the artifacts folder served over HTTP on loopback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelfleet.devcluster import ControlPlane

from .artifacts import Artifacts, call_failed, serve_folder
from .cluster import Api
from .fleet import FleetAPI, SimulatedFleet, running_fleet_api
from .operatorproc import OperatorProcess, artifact_sources
from .reports import StatusWriter


@pytest.fixture
def api(control_plane: ControlPlane, namespace: str) -> Api:
    return Api(control_plane, namespace)


@pytest.fixture
def operator(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(control_plane, namespace, tmp_path, extra=artifact_sources(tmp_path))
    try:
        proc.start()  # inside: an operator that never turns live is stopped too, not left behind
        yield proc
    finally:
        proc.stop()
        if call_failed(request):
            sys.stderr.write(proc.logs()[-20000:])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture
def artifacts(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Artifacts]:
    arts = Artifacts(control_plane, tmp_path / "artifacts", policy=f"signers-{namespace}")
    arts.sign("1.0.0")
    arts.apply_policy()
    yield arts
    control_plane.kubectl("delete", "trustpolicy", arts.policy, "--wait=false", check=False)


@pytest.fixture(scope="module")
def fleet_api(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FleetAPI]:
    """One fleet API per test module (starting one per test would double the suite's time)."""
    yield from running_fleet_api(control_plane, tmp_path_factory.mktemp("fleet-api"))


@pytest.fixture
def fleet(
    api: Api, artifacts: Artifacts, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[SimulatedFleet | StatusWriter]:
    """Simulated agents through the real fleet API; a test module that sets
    ``STATUS_WRITTEN_BECAUSE = "<reason>"`` gets EdgeGateway status written directly instead
    (:class:`~.reports.StatusWriter`), for the reason it gives."""
    if getattr(request.module, "STATUS_WRITTEN_BECAUSE", None):
        yield request.getfixturevalue("written_fleet")
        return
    fleet_api: FleetAPI = request.getfixturevalue("fleet_api")  # started only when needed
    sim = SimulatedFleet(
        fleet_api, api.cp.kubeconfig, api.namespace, artifacts.sign("1.0.0").policy_path,
        tmp_path / "gateways",
    )  # fmt: skip
    try:
        yield sim
    finally:
        sim.stop()
        if call_failed(request):
            sys.stderr.write(f"\n----- fleet API -----\n{sim.logs()}\n")


@pytest.fixture
def written_fleet(api: Api) -> Iterator[StatusWriter]:
    """Gateways whose status is written straight into the API server (:mod:`.reports`), for the
    tests that need a status no real agent produces, or are not moved onto ``fleet`` yet."""
    writer = StatusWriter(api)
    yield writer
    writer.stop()


@pytest.fixture(autouse=True)
def _no_proxy() -> None:
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def http_base(artifacts: Artifacts) -> Iterator[str]:
    """The artifacts folder served over HTTP on a loopback port (``http://127.0.0.1:PORT``)."""
    with serve_folder(artifacts.root) as url:
        yield url

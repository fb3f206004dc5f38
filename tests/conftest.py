"""Fixtures shared by the whole suite: a real control plane (etcd + kube-apiserver) for the
session, and a namespace of its own for each test."""

from __future__ import annotations

import atexit
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelfleet.devcluster import ControlPlane

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver on free loopback ports with the CRDs installed (envtest
    conventions: KUBEBUILDER_ASSETS, TEST_ASSET_*, USE_EXISTING_CLUSTER=true)."""
    cp = ControlPlane.from_environment()
    atexit.register(cp.stop)  # also when the session is interrupted
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, removed (custom objects first) afterwards."""
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{secrets.token_hex(3)}"
    with control_plane.namespace(name):
        yield name

"""Fixtures shared by the whole suite: a real control plane (etcd + kube-apiserver) for the
session, a namespace of its own for each test, and aiohttp applications served on loopback."""

from __future__ import annotations

import atexit
import contextlib
import re
import secrets
import ssl
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from modelfleet.devcluster import ControlPlane
from tests.webserve import WebServer, serve


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


@pytest.fixture
async def web_server() -> AsyncIterator[WebServer]:
    """``await web_server(app, ssl_context=None, port=0)`` serves ``app`` on loopback for the
    rest of the test and returns its base URL (``http(s)://127.0.0.1:PORT``)."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(
            app: web.Application, *, ssl_context: ssl.SSLContext | None = None, port: int = 0
        ) -> str:
            return await stack.enter_async_context(serve(app, ssl_context=ssl_context, port=port))

        yield start

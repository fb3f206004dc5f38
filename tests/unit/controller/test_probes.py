"""The operator's /healthz and /readyz (controller.probes), served for real on loopback: readyz
is 503 until the operator has started and listed every watched namespace's EdgeGateways."""

from __future__ import annotations

import json
import logging
import socket
from typing import Any, cast

import aiohttp
import pytest

from modelfleet.controller.gateways import GatewayCache
from modelfleet.controller.handlers import Runtime
from modelfleet.controller.probes import logged_probes, parse_endpoint, serve_probes
from modelfleet.controller.reconcile import Reconciler
from modelfleet.errors import ConfigError


async def get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, json.loads(await resp.text())


async def test_readyz_is_503_until_the_gateways_are_listed() -> None:
    runtime = Runtime()
    runner = await serve_probes("http://127.0.0.1:0/livez", runtime.ready)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        assert await get(f"{base}/healthz") == (200, {"ok": True})
        assert await get(f"{base}/livez") == (200, {"ok": True})  # the path given too
        assert await get(f"{base}/readyz") == (503, {"ok": False, "reason": "starting"})

        runtime.gateways = GatewayCache(cast(Any, None), ["retail"])
        runtime.reconciler = cast(Reconciler, object())
        status, body = await get(f"{base}/readyz")
        assert (status, body["reason"]) == (503, "edgegateways not listed yet")

        runtime.gateways.synced.set()
        assert await get(f"{base}/readyz") == (200, {"ok": True, "reason": "ready"})
        assert await get(f"{base}/healthz") == (200, {"ok": True})
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:8080/healthz", "http://127.0.0.1/healthz", "0.0.0.0:8080"]
)
def test_a_liveness_url_without_http_host_and_port_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="--liveness: expected http://HOST:PORT/PATH"):
        parse_endpoint(url)


async def test_port_0_serves_on_a_free_port_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modelfleet.controller.probes")
    runner = await serve_probes("http://127.0.0.1:0/healthz", Runtime().ready)
    try:
        port = runner.addresses[0][1]
        assert port > 0
        assert logged_probes(caplog.text) == f"http://127.0.0.1:{port}"
        assert await get(f"http://127.0.0.1:{port}/healthz") == (200, {"ok": True})
    finally:
        await runner.cleanup()


async def test_an_address_in_use_is_an_error_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"--liveness: cannot listen on 127.0.0.1:{port}: "):
            await serve_probes(f"http://127.0.0.1:{port}/healthz", Runtime().ready)

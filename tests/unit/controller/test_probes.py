"""The operator's /healthz and /readyz (controller.probes), served for real on loopback: readyz
is 503 until the operator has started and listed every watched namespace's EdgeGateways."""

from __future__ import annotations

import json
from typing import Any, cast

import aiohttp
import pytest

from modelfleet.controller.gateways import GatewayCache
from modelfleet.controller.handlers import Runtime
from modelfleet.controller.probes import parse_endpoint, serve_probes
from modelfleet.controller.reconcile import Reconciler
from modelfleet.devcluster import free_port


async def get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, json.loads(await resp.text())


async def test_readyz_is_503_until_the_gateways_are_listed() -> None:
    runtime = Runtime()
    port = free_port()
    runner = await serve_probes(f"http://127.0.0.1:{port}/livez", runtime.ready)
    base = f"http://127.0.0.1:{port}"
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

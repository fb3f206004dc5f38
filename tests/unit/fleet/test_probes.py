"""The fleet API's plain-HTTP probes (fleet.metrics.metrics_app), served for real on loopback:
/readyz and /healthz answer 503 with the reason until the replica is ready (both watches listed,
HTTPS port open; see ``Replica.ready``), then 200."""

from __future__ import annotations

import json

import aiohttp

from modelfleet.fleet.metrics import FleetMetrics, metrics_app
from tests.webserve import WebServer


async def test_readyz_follows_the_replica_readiness(web_server: WebServer) -> None:
    state = (False, "edgegateways not listed yet")
    url = await web_server(metrics_app(FleetMetrics(), lambda: state))
    async with aiohttp.ClientSession() as session:
        for path in ("/readyz", "/healthz"):
            async with session.get(f"{url}{path}") as resp:
                assert resp.status == 503
                body = json.loads(await resp.text())
                assert body == {"ok": False, "reason": "edgegateways not listed yet"}
        state = (True, "serving")
        for path in ("/readyz", "/healthz"):
            async with session.get(f"{url}{path}") as resp:
                assert resp.status == 200

"""The operator's probe endpoints: ``/healthz`` (the process serves) and ``/readyz`` (it may
decide releases: started, and every watched namespace's EdgeGateways listed).

Served on the address of ``--liveness URL`` (the URL's path is served as ``/healthz`` too), in
place of kopf's own liveness endpoint, from the operator's event loop: a wedged loop answers
neither. Readiness is what the handlers themselves wait for (:attr:`GatewayCache.synced`), so a
pod is not Ready while its releases would still be held back.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web


def parse_endpoint(url: str) -> tuple[str, int, str]:
    """``http://HOST:PORT/PATH`` -> (host, port, path); ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValueError(f"--liveness: expected http://HOST:PORT/PATH, got {url!r}")
    return parts.hostname, parts.port, parts.path or "/healthz"


def probe_app(
    ready: Callable[[], tuple[bool, str]], liveness_path: str = "/healthz"
) -> web.Application:
    """``/healthz`` (and ``liveness_path``): 200 while the loop runs; ``/readyz``: 200 when
    ``ready()``, else 503 with its reason."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(_: web.Request) -> web.Response:
        ok, reason = ready()
        return web.json_response({"ok": ok, "reason": reason}, status=200 if ok else 503)

    app = web.Application()
    for path in dict.fromkeys(("/healthz", liveness_path)):
        app.router.add_get(path, healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve_probes(url: str, ready: Callable[[], tuple[bool, str]]) -> web.AppRunner:
    """Start :func:`probe_app` on the address of ``url``; the runner (``cleanup()`` stops it)."""
    host, port, path = parse_endpoint(url)
    runner = web.AppRunner(probe_app(ready, path), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner

"""The operator's probe endpoints: ``/healthz`` (the process serves) and ``/readyz`` (it may
decide releases: started, and every watched namespace's EdgeGateways listed).

Served on the address of ``--liveness URL`` (the URL's path is served as ``/healthz`` too), in
place of kopf's own liveness endpoint, from the operator's event loop: a wedged loop answers
neither. Readiness is what the handlers themselves wait for (:attr:`GatewayCache.synced`), so a
pod is not Ready while its releases would still be held back.

Port 0 asks the system for a free port (tests, several operators on one host); the address
served is logged (``probes on http://HOST:PORT``; :func:`logged_probes` reads it back for
whoever started the process). An address already in use is an error naming it, not retried.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web

from modelfleet.errors import ConfigError

log = logging.getLogger(__name__)
_LOGGED = re.compile(r"probes on (http://[^\s]+:\d+) ")


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
    """Start :func:`probe_app` on the address of ``url``; the runner (``cleanup()`` stops it).

    :class:`~modelfleet.errors.ConfigError` naming the address when it cannot be listened on."""
    host, port, path = parse_endpoint(url)
    runner = web.AppRunner(probe_app(ready, path), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"--liveness: cannot listen on {host}:{port}: {exc.strerror}") from exc
    bound = runner.addresses[0][1]
    paths = ", ".join(dict.fromkeys(("/healthz", path, "/readyz")))
    log.info("probes on http://%s:%d (%s)", host, bound, paths)
    return runner


def logged_probes(log_text: str) -> str | None:
    """The probes' base URL (``http://HOST:PORT``) that an operator's log names last, if any."""
    found = _LOGGED.findall(log_text)
    return found[-1] if found else None

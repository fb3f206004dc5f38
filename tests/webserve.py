"""aiohttp applications served for real on a loopback port, for tests.

:func:`start` runs an application and returns its runner and port; :func:`serve` is the same as
an async context manager yielding the base URL. The ``web_server`` fixture (tests/conftest.py)
serves any number of applications for one test and stops them afterwards."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

WebServer = Callable[..., Awaitable[str]]
"""The ``web_server`` fixture: ``await web_server(app, ssl_context=None, port=0)`` -> base URL."""


async def start(
    app: web.Application, *, ssl_context: ssl.SSLContext | None = None, port: int = 0
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on 127.0.0.1 (a free port unless ``port``); the runner (to clean up) and
    the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@contextlib.asynccontextmanager
async def serve(
    app: web.Application, *, ssl_context: ssl.SSLContext | None = None, port: int = 0
) -> AsyncIterator[str]:
    """``app`` served while the block runs; yields ``http(s)://127.0.0.1:PORT``."""
    runner, port = await start(app, ssl_context=ssl_context, port=port)
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()

"""The agent's side of the edge protocol: the :class:`FleetTransport` protocol and its mTLS HTTP
implementation, plus the TLS contexts and sessions the agent uses.

The fleet API authenticates the gateway by its client certificate; the agent authenticates the
fleet API with the fleet CA from its bundle (``tls.ca``), never with the system trust store.
"""

from __future__ import annotations

import json
import logging
import ssl
from typing import Protocol

import aiohttp

from modelfleet import __version__
from modelfleet.agent.protocol import (
    DesiredState,
    NotModified,
    ProtocolError,
    Report,
    parse_desired,
)
from modelfleet.certs import TLSFiles
from modelfleet.errors import ModelfleetError
from modelfleet.protocol.rules import MAX_WAIT_SECONDS as MAX_WAIT
from modelfleet.protocol.rules import POLL_AFTER_HEADER

log = logging.getLogger(__name__)

MAX_DESIRED_BYTES = 4 * 1024 * 1024
USER_AGENT = f"modelfleet-agent/{__version__}"


class FleetError(ModelfleetError):
    """A request to the fleet API failed. ``transient`` says whether a retry may succeed."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


class FleetTransport(Protocol):
    """How the agent talks to the fleet API (HTTP with mTLS, or in-process for tests)."""

    async def get_desired(
        self, *, etag: str | None, wait: float | None
    ) -> DesiredState | NotModified:
        """The desired state, or :class:`NotModified` when it still matches ``etag``."""
        ...

    async def post_report(self, report: Report) -> bool | None:
        """Send one report; raises :class:`FleetError` when it was not accepted. The answer's
        ``written`` (None when the transport cannot say)."""
        ...


def client_ssl_context(tls: TLSFiles) -> ssl.SSLContext:
    """An mTLS client context: our certificate and key, only the fleet CA as trust anchor."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise ModelfleetError(
            f"cannot load TLS material (cert {tls.cert}, key {tls.key}, ca {tls.ca}): {exc}"
        ) from exc
    return ctx


def fleet_session(
    ssl_context: ssl.SSLContext, *, limit: int = 4, connector: aiohttp.BaseConnector | None = None
) -> aiohttp.ClientSession:
    """A session for the fleet API; pass ``connector`` to share one (it is then not owned)."""
    if connector is None:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context, limit=limit),
            headers={"User-Agent": USER_AGENT},
        )
    return aiohttp.ClientSession(
        connector=connector, connector_owner=False, headers={"User-Agent": USER_AGENT}
    )


class HttpFleetTransport:
    """``GET /v1/desired`` and ``POST /v1/report`` over an mTLS :class:`aiohttp.ClientSession`."""

    def __init__(
        self, base_url: str, session: aiohttp.ClientSession, *, request_timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = request_timeout

    async def get_desired(
        self, *, etag: str | None, wait: float | None
    ) -> DesiredState | NotModified:
        headers = {"Accept": "application/json"}
        if etag:
            headers["If-None-Match"] = etag
        wait = min(float(MAX_WAIT), wait) if wait else None
        params = {"wait": str(int(wait))} if wait else None
        timeout = aiohttp.ClientTimeout(total=self._timeout + (wait or 0))
        url = f"{self.base_url}/v1/desired"
        try:
            async with self._session.get(
                url, headers=headers, params=params, timeout=timeout
            ) as resp:
                if resp.status == 304:
                    return NotModified(_poll_after(resp.headers.get(POLL_AFTER_HEADER)))
                await _raise_for_status(resp, "GET /v1/desired")
                raw = await resp.content.read(MAX_DESIRED_BYTES + 1)
                if len(raw) > MAX_DESIRED_BYTES:
                    raise FleetError("GET /v1/desired: response too large", transient=True)
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise FleetError(f"GET /v1/desired: not JSON: {exc}", transient=True) from exc
                try:
                    return parse_desired(body, etag=resp.headers.get("ETag"))
                except ProtocolError as exc:
                    raise FleetError(str(exc), transient=True) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise FleetError(f"GET {url}: {_describe(exc)}", transient=True) from exc

    async def post_report(self, report: Report) -> bool | None:
        url = f"{self.base_url}/v1/report"
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with self._session.post(url, json=report.to_json(), timeout=timeout) as resp:
                await _raise_for_status(resp, "POST /v1/report")
                return _written(await resp.content.read(4096))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise FleetError(f"POST {url}: {_describe(exc)}", transient=True) from exc


async def _raise_for_status(resp: aiohttp.ClientResponse, what: str) -> None:
    if 200 <= resp.status < 300:
        return
    detail = ""
    try:
        body = await resp.content.read(2000)
        doc = json.loads(body)
        if isinstance(doc, dict):
            detail = str(doc.get("message") or doc.get("error") or doc.get("reason") or "")
    except (ValueError, aiohttp.ClientError):
        pass
    transient = resp.status >= 500 or resp.status in (408, 425, 429)
    message = f"{what}: HTTP {resp.status}" + (f": {detail}" if detail else "")
    if resp.status in (401, 403):
        message += " (is this gateway enrolled, and its certificate the registered one?)"
    raise FleetError(message, transient=transient, status=resp.status)


def _written(body: bytes) -> bool | None:
    """``written`` of a report's answer (None when the answer does not say)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    written = doc.get("written") if isinstance(doc, dict) else None
    return written if isinstance(written, bool) else None


def _poll_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds < 86400 else None


def _describe(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

"""Wiring a real agent from ``agent.yaml``: mTLS session, HTTP transport, downloader, trust
verifier, configured health check and Prometheus health source, system clock.

``async with AgentRuntime(config) as agent: await agent.run()`` is what ``modelfleet agent``
does. The sessions are owned by the runtime and closed on exit.
"""

from __future__ import annotations

import logging
import ssl
from types import TracebackType
from urllib.parse import urlsplit

import aiohttp

from modelfleet.agent.clock import Clock, SystemClock
from modelfleet.agent.config import AgentConfig
from modelfleet.agent.core import AgentDeps, AgentSettings, GatewayAgent
from modelfleet.agent.download import Downloader
from modelfleet.agent.healthcheck import build_health_check
from modelfleet.agent.procverifier import ProcessVerifier
from modelfleet.agent.telemetry import PrometheusHealthSource
from modelfleet.agent.transport import (
    USER_AGENT,
    HttpFleetTransport,
    client_ssl_context,
    fleet_session,
)
from modelfleet.agent.trustverifier import TrustVerifier, VerifiedCache
from modelfleet.agent.verifier import Verifier

log = logging.getLogger(__name__)


def settings_from_config(config: AgentConfig, *, long_poll: float | None = None) -> AgentSettings:
    """The plain settings of an agent configured by ``agent.yaml``."""
    return AgentSettings(
        gateway=config.gateway,
        data_dir=config.data_dir,
        poll_interval=config.poll_interval,
        report_interval=config.report_interval,
        window_seconds=config.metrics.window_seconds if config.metrics else 60.0,
        max_artifact_bytes=config.max_artifact_bytes,
        long_poll=long_poll,
    )


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port)


def artifact_ssl_context(config: AgentConfig) -> ssl.SSLContext:
    """System trust plus the fleet CA, for artifact stores (no client certificate)."""
    ctx = ssl.create_default_context()
    try:
        ctx.load_verify_locations(cafile=str(config.tls.ca))
    except (OSError, ssl.SSLError) as exc:
        log.warning("gateway %s: cannot add fleet CA %s: %s", config.gateway, config.tls.ca, exc)
    return ctx


class AgentRuntime:
    """Owns the sessions of one real agent; yields a :class:`GatewayAgent`."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Clock | None = None,
        long_poll: float | None = None,
        cache: VerifiedCache | None = None,
        inline_verification: bool = False,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.long_poll = long_poll
        self.cache = cache
        self.inline_verification = inline_verification or cache is not None
        self._sessions: list[aiohttp.ClientSession] = []
        self._verifier: ProcessVerifier | None = None

    async def __aenter__(self) -> GatewayAgent:
        config = self.config
        verifier: Verifier
        if self.inline_verification:
            verifier = TrustVerifier(config.trust_policy, cache=self.cache)
        else:
            verifier = self._verifier = ProcessVerifier(config.trust_policy)
        fleet = fleet_session(client_ssl_context(config.tls))
        public = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=artifact_ssl_context(config), limit=4),
            headers={"User-Agent": USER_AGENT},
        )
        local = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        self._sessions = [fleet, public, local]
        fleet_origin = origin(config.fleet_url)

        def session_for(uri: str) -> aiohttp.ClientSession:
            return fleet if origin(uri) == fleet_origin else public

        deps = AgentDeps(
            transport=HttpFleetTransport(config.fleet_url, fleet),
            fetcher=Downloader(session_for, gateway=config.gateway),
            verifier=verifier,
            health_check=build_health_check(config.health_check, local, self.clock),
            clock=self.clock,
            health_source=PrometheusHealthSource(
                config.metrics, local, self.clock, gateway=config.gateway
            )
            if config.metrics
            else None,
        )
        return GatewayAgent(settings_from_config(config, long_poll=self.long_poll), deps)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for session in self._sessions:
            await session.close()
        self._sessions = []
        if self._verifier is not None:
            await self._verifier.close()
            self._verifier = None

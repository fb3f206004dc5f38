"""Post-activation health checks: the :class:`HealthCheck` protocol, a command, an HTTP probe.

A check runs after every activation; a failure makes the agent switch back to the previous slot
and report ``RolledBack`` with the check's reason. Placeholders ``{model}``, ``{version}``,
``{digest}`` and ``{path}`` (the model through the stable ``active`` link) are substituted in the
command's arguments and the probe URL. Commands run without a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from modelfleet.agent.clock import Clock
from modelfleet.agent.config import HealthCheckConfig

log = logging.getLogger(__name__)

MAX_REASON = 300


@dataclass(frozen=True)
class HealthTarget:
    """The model version that was just activated."""

    model: str
    version: str
    digest: str
    path: Path
    gateway: str = ""

    def substitute(self, text: str) -> str:
        return (
            text.replace("{model}", self.model)
            .replace("{version}", self.version)
            .replace("{digest}", self.digest)
            .replace("{path}", str(self.path))
        )


@dataclass(frozen=True)
class HealthResult:
    """``ok``, or not with a one-line reason a person can act on."""

    ok: bool
    reason: str = ""


class HealthCheck(Protocol):
    """Decides whether a freshly activated model works."""

    async def check(self, target: HealthTarget) -> HealthResult: ...


class AlwaysHealthy:
    """No health check configured: activation alone counts as success."""

    async def check(self, target: HealthTarget) -> HealthResult:
        return HealthResult(ok=True)


class CommandHealthCheck:
    """Runs ``command`` (argv); exit status 0 within ``timeout`` means healthy."""

    def __init__(self, config: HealthCheckConfig, clock: Clock) -> None:
        if not config.command:
            raise ValueError("CommandHealthCheck needs healthCheck.command")
        self.config = config
        self._clock = clock

    async def check(self, target: HealthTarget) -> HealthResult:
        return await _with_attempts(self.config, self._clock, target, self._once)

    async def _once(self, target: HealthTarget) -> HealthResult:
        argv = [target.substitute(a) for a in self.config.command or ()]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            return HealthResult(False, f"health check command {argv[0]}: {exc.strerror or exc}")
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.config.timeout)
        except BaseException as exc:  # timeout or cancellation: never leave it running
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            if not isinstance(exc, TimeoutError):
                raise
            return HealthResult(
                False, f"health check command timed out after {self.config.timeout:g}s"
            )
        if proc.returncode == 0:
            return HealthResult(True)
        lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
        tail = f": {lines[-1].strip()}" if lines else ""
        return HealthResult(
            False, f"health check command exited {proc.returncode}{tail}"[:MAX_REASON]
        )


class HttpHealthCheck:
    """GETs ``httpURL``; a 2xx answer within ``timeout`` means healthy."""

    def __init__(
        self, config: HealthCheckConfig, session: aiohttp.ClientSession, clock: Clock
    ) -> None:
        if not config.http_url:
            raise ValueError("HttpHealthCheck needs healthCheck.httpURL")
        self.config = config
        self._session = session
        self._clock = clock

    async def check(self, target: HealthTarget) -> HealthResult:
        return await _with_attempts(self.config, self._clock, target, self._once)

    async def _once(self, target: HealthTarget) -> HealthResult:
        url = target.substitute(self.config.http_url or "")
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        try:
            async with self._session.get(url, timeout=timeout) as resp:
                if 200 <= resp.status < 300:
                    return HealthResult(True)
                body = (await resp.content.read(200)).decode(errors="replace")
                detail = " ".join(body.split())
                return HealthResult(
                    False,
                    f"health probe {url}: HTTP {resp.status}{': ' + detail if detail else ''}"[
                        :MAX_REASON
                    ],
                )
        except TimeoutError:
            return HealthResult(False, f"health probe {url}: timed out after {timeout.total:g}s")
        except aiohttp.ClientError as exc:
            return HealthResult(False, f"health probe {url}: {exc}"[:MAX_REASON])


async def _with_attempts(
    config: HealthCheckConfig,
    clock: Clock,
    target: HealthTarget,
    once: _Once,
) -> HealthResult:
    result = HealthResult(False, "health check did not run")
    for attempt in range(1, config.attempts + 1):
        result = await once(target)
        if result.ok:
            return result
        log.info(
            "gateway %s model %s %s: health check attempt %d/%d failed: %s",
            target.gateway,
            target.model,
            target.version,
            attempt,
            config.attempts,
            result.reason,
        )
        if attempt < config.attempts:
            await clock.sleep(config.interval)
    if config.attempts > 1:
        return HealthResult(False, f"{result.reason} (after {config.attempts} attempts)")
    return result


class _Once(Protocol):
    async def __call__(self, target: HealthTarget) -> HealthResult: ...


def build_health_check(
    config: HealthCheckConfig | None, session: aiohttp.ClientSession, clock: Clock
) -> HealthCheck:
    """The check ``agent.yaml`` asks for (always healthy when none is configured)."""
    if config is None:
        return AlwaysHealthy()
    if config.command:
        return CommandHealthCheck(config, clock)
    return HttpHealthCheck(config, session, clock)

"""Post-activation health checks: a command or an HTTP probe, with placeholders and attempts."""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from modelfleet.agent.config import HealthCheckConfig
from modelfleet.agent.healthcheck import CommandHealthCheck, HealthTarget, HttpHealthCheck
from tests.webserve import WebServer

from .helpers import FastClock

TARGET = HealthTarget("detector", "2.0", "sha256:" + "a" * 64, Path("/data/detector/active/model"))


def py(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


async def test_command_exit_zero_is_healthy_and_gets_placeholders(tmp_path: Path) -> None:
    out = tmp_path / "args"
    code = f"import sys; open({str(out)!r}, 'w').write(' '.join(sys.argv[1:]))"
    config = HealthCheckConfig(command=(*py(code), "{model}", "{version}", "{path}"), timeout=30)
    result = await CommandHealthCheck(config, FastClock()).check(TARGET)
    assert result.ok
    assert out.read_text() == "detector 2.0 /data/detector/active/model"


async def test_command_failure_reports_exit_code_and_last_output_line() -> None:
    config = HealthCheckConfig(command=py("print('loading'); print('model NaN'); exit(3)"))
    result = await CommandHealthCheck(config, FastClock()).check(TARGET)
    assert not result.ok
    assert result.reason == "health check command exited 3: model NaN"


async def test_command_timeout_kills_it() -> None:
    config = HealthCheckConfig(command=py("import time; time.sleep(30)"), timeout=0.3)
    result = await CommandHealthCheck(config, FastClock()).check(TARGET)
    assert not result.ok and "timed out after 0.3s" in result.reason


async def test_missing_command_is_a_failure_not_a_crash() -> None:
    config = HealthCheckConfig(command=("/nonexistent/check",))
    result = await CommandHealthCheck(config, FastClock()).check(TARGET)
    assert not result.ok and "/nonexistent/check" in result.reason


async def test_attempts_retry_until_success(tmp_path: Path) -> None:
    marker = tmp_path / "count"
    code = (
        f"import pathlib; p = pathlib.Path({str(marker)!r}); n = int(p.read_text() or 0) "
        "if p.exists() else 0; p.write_text(str(n + 1)); exit(0 if n >= 2 else 1)"
    )
    clock = FastClock()
    config = HealthCheckConfig(command=py(code), attempts=3, interval=5)
    result = await CommandHealthCheck(config, clock).check(TARGET)
    assert result.ok and marker.read_text() == "3"
    assert clock.sleeps == [5, 5]


async def test_attempts_exhausted_says_so() -> None:
    config = HealthCheckConfig(command=py("exit(1)"), attempts=2, interval=1)
    result = await CommandHealthCheck(config, FastClock()).check(TARGET)
    assert not result.ok and result.reason.endswith("(after 2 attempts)")


@pytest.fixture
async def probe(web_server: WebServer) -> tuple[str, dict[str, int]]:
    status = {"code": 200}

    async def handler(request: web.Request) -> web.Response:
        assert request.match_info["model"] == "detector"
        return web.Response(status=status["code"], text="not ready: loading")

    app = web.Application()
    app.router.add_get("/v2/models/{model}/ready", handler)
    return await web_server(app) + "/v2/models/{model}/ready", status


async def test_http_probe_2xx_is_healthy(probe: tuple[str, dict[str, int]]) -> None:
    url, _ = probe
    async with aiohttp.ClientSession() as session:
        check = HttpHealthCheck(HealthCheckConfig(http_url=url), session, FastClock())
        assert (await check.check(TARGET)).ok


async def test_http_probe_error_status_names_status_and_body(
    probe: tuple[str, dict[str, int]],
) -> None:
    url, status = probe
    status["code"] = 503
    async with aiohttp.ClientSession() as session:
        check = HttpHealthCheck(HealthCheckConfig(http_url=url), session, FastClock())
        result = await check.check(TARGET)
    assert not result.ok
    assert "HTTP 503: not ready: loading" in result.reason


async def test_http_probe_unreachable_is_unhealthy() -> None:
    async with aiohttp.ClientSession() as session:
        check = HttpHealthCheck(
            HealthCheckConfig(http_url="http://127.0.0.1:9/ready"), session, FastClock()
        )
        result = await check.check(TARGET)
    assert not result.ok and "127.0.0.1:9" in result.reason

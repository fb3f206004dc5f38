"""``modelfleet-agent --config agent.yaml`` as a real process against the mTLS fleet stub."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modelfleet.cli.main import main as cli_main

from .fleetstub import FleetStub, start_stub
from .helpers import versions

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[FleetStub]:
    async for s in start_stub(tmp_path):
        yield s


async def test_agent_process_installs_reports_and_stops_on_sigterm(
    stub: FleetStub, tmp_path: Path
) -> None:
    v = versions(tmp_path, "1.0")
    config = stub.enroll("gw-cli", v["1.0"].policy_path)
    stub.set_desired(stub.desired_model(v["1.0"], "1.0"))
    bundle = config.data_dir.parent / "agent.yaml"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modelfleet.agent", "--config", str(bundle), "--log-format", "json",
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "operator")},
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        for _ in range(600):
            if stub.last_states().get("gw-cli") == ("1.0", "Active"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the agent never reported Active")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await proc.communicate()
    assert proc.returncode == 0
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert lines and all(doc["gateway"] == "gw-cli" for doc in lines)
    assert any("is active and healthy" in doc["message"] for doc in lines)
    active = next(doc for doc in lines if "is active and healthy" in doc["message"])
    assert (active["component"], active["version"]) == ("agent", "1.0")
    assert active["model"] == "detector"


def test_check_config_reports_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelfleet.agent.config import AgentConfig, write_agent_config
    from modelfleet.certs import TLSFiles
    from modelfleet.enrollment.pki import FleetCA

    v = versions(tmp_path, "1.0")
    ca = FleetCA.create()
    client = ca.issue_client("gw-x")
    (tmp_path / "c.crt").write_bytes(client.cert_pem)
    (tmp_path / "c.key").write_bytes(client.key_pem)
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    config = AgentConfig(
        gateway="gw-x",
        fleet_url="https://127.0.0.1:1",
        tls=TLSFiles(tmp_path / "c.crt", tmp_path / "c.key", tmp_path / "ca.crt"),
        data_dir=tmp_path / "data",
        trust_policy=v["1.0"].policy_path,
    )
    write_agent_config(config, tmp_path / "agent.yaml")
    assert cli_main(["agent", "--config", str(tmp_path / "agent.yaml"), "--check-config"]) == 0
    assert "gateway gw-x: config OK" in capsys.readouterr().out


def test_bad_config_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "agent.yaml").write_text("gateway: x\n")
    assert cli_main(["agent", "--config", str(tmp_path / "agent.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("modelfleet agent: ") and "fleetURL: required" in err
    assert "\n" not in err

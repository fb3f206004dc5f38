"""agent.yaml: the contract with enrollment; every mistake is named with file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.agent.config import (
    AgentConfigError,
    load_agent_config,
    parse_duration,
    write_agent_config,
)

BASE: dict[str, Any] = {
    "apiVersion": "modelfleet.dev/v1alpha1",
    "kind": "AgentConfig",
    "gateway": "store-0042",
    "fleetURL": "https://fleet.example.com:8443/",
    "tls": {"cert": "client.crt", "key": "client.key", "ca": "ca.crt"},
    "dataDir": "data",
    "trustPolicy": "trust-policy.yaml",
    "pollInterval": "15s",
    "healthCheck": {"command": ["/bin/check", "{model}", "{path}"], "timeout": "5s"},
    "metrics": {
        "url": "http://127.0.0.1:8080/metrics",
        "requestsMetric": "req_total",
        "errorsMetric": "err_total",
        "latencyHistogram": "latency_seconds",
    },
}


def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "bundle" / "agent.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def test_bundle_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = load_agent_config(write(tmp_path, BASE))
    bundle = (tmp_path / "bundle").resolve()
    assert config.tls.cert == bundle / "client.crt"
    assert config.data_dir == bundle / "data"
    assert config.trust_policy == bundle / "trust-policy.yaml"
    assert config.fleet_url == "https://fleet.example.com:8443"
    assert config.poll_interval == 15 and config.report_interval == 60
    assert config.health_check is not None and config.health_check.timeout == 5
    assert config.metrics is not None and config.metrics.window_seconds == 60


def test_written_config_loads_back_equal(tmp_path: Path) -> None:
    config = load_agent_config(write(tmp_path, BASE))
    out = tmp_path / "bundle" / "agent2.yaml"
    write_agent_config(config, out)
    assert load_agent_config(out) == config
    assert yaml.safe_load(out.read_text())["tls"]["cert"] == "client.crt"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fleetURL": "http://fleet:80"}, "fleetURL: must be an https:// URL"),
        ({"gateway": "Store_42"}, "gateway: 'Store_42' is not a valid"),
        ({"tls": {"cert": "c", "key": "k"}}, "tls.ca: required"),
        ({"pollInterval": "soon"}, "pollInterval: 'soon' is not a duration"),
        ({"pollIntervall": "1s"}, "pollIntervall: unknown field"),
        ({"kind": "Agent"}, "kind: must be 'AgentConfig'"),
        (
            {"healthCheck": {"timeout": "1s"}},
            "healthCheck: needs exactly one of command or httpURL",
        ),
        ({"healthCheck": {"command": ["x", "{modle}"]}}, "unknown placeholder {modle}"),
        ({"healthCheck": {"httpURL": "ftp://x"}}, "healthCheck.httpURL: must be an http"),
        ({"metrics": {"url": "http://x/metrics"}}, "metrics.requestsMetric: required"),
        ({"maxArtifactBytes": -1}, "maxArtifactBytes: must be positive"),
    ],
)
def test_invalid_fields_are_named(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(AgentConfigError) as info:
        load_agent_config(write(tmp_path, {**BASE, **change}))
    assert message in info.value.diagnostics()
    assert "agent.yaml" in info.value.diagnostics()


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="cannot read agent config"):
        load_agent_config(tmp_path / "nope.yaml")


def test_not_a_mapping_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(AgentConfigError, match="expected a mapping"):
        load_agent_config(path)


@pytest.mark.parametrize(
    ("raw", "seconds"), [(30, 30.0), (2.5, 2.5), ("500ms", 0.5), ("5m", 300.0), ("1h", 3600.0)]
)
def test_durations(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", [0, -1, "0s", True, "1d", None])
def test_bad_durations(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(raw)

"""Agent bundles written by enrollment load with the agent's own config loader."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest

from modelfleet.agent.config import load_agent_config
from modelfleet.enrollment import Bundle, EnrollmentError, parse_labels
from modelfleet.enrollment.pki import FleetCA


def bundle(**over: object) -> Bundle:
    ca = FleetCA.create()
    issued = ca.issue_client("store-1")
    fields: dict[str, object] = {
        "gateway": "store-1",
        "namespace": "retail",
        "fingerprint": issued.fingerprint,
        "not_after": issued.not_after,
        "fleet_url": "https://fleet.example.com:8443",
        "cert_pem": issued.cert_pem,
        "key_pem": issued.key_pem,
        "ca_pem": ca.cert_pem,
        "trust_policy": b"apiVersion: modelfleet.dev/v1alpha1\nkind: TrustPolicy\n",
        "report_interval": 60.0,
    }
    fields.update(over)
    return Bundle(**fields)  # type: ignore[arg-type]


def test_the_written_bundle_loads_as_agent_config(tmp_path: Path) -> None:
    b = bundle()
    config = load_agent_config(b.write(tmp_path / "store-1"))
    folder = (tmp_path / "store-1").resolve()
    assert config.gateway == "store-1" and config.namespace == "retail"
    assert config.fleet_url == "https://fleet.example.com:8443"
    assert config.tls.cert == folder / "client.crt"
    assert config.tls.cert.read_bytes() == b.cert_pem
    assert config.tls.ca.read_bytes() == b.ca_pem
    assert config.trust_policy.read_bytes() == b.trust_policy
    assert config.data_dir == folder / "data"
    assert config.report_interval == 60.0


def test_the_private_key_is_readable_only_by_its_owner(tmp_path: Path) -> None:
    bundle().write(tmp_path / "b")
    assert stat.S_IMODE((tmp_path / "b" / "client.key").stat().st_mode) == 0o600


def test_an_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    config = load_agent_config(bundle(data_dir="/var/lib/modelfleet").write(tmp_path / "b"))
    assert config.data_dir == Path("/var/lib/modelfleet")


def test_without_a_trust_policy_no_file_is_written(tmp_path: Path) -> None:
    bundle(trust_policy=None).write(tmp_path / "b")
    assert not (tmp_path / "b" / "trust-policy.yaml").exists()


def test_not_after_is_in_the_future() -> None:
    assert bundle().not_after > dt.datetime.now(dt.UTC)


def test_labels_parse() -> None:
    assert parse_labels("tier=retail, ring=early,example.com/zone=eu-1") == {
        "tier": "retail",
        "ring": "early",
        "example.com/zone": "eu-1",
    }
    assert parse_labels("") == {}


@pytest.mark.parametrize("text", ["tier", "tier=has space", "-bad=1", "a=" + "x" * 64])
def test_bad_labels_are_refused(text: str) -> None:
    with pytest.raises(EnrollmentError):
        parse_labels(text)

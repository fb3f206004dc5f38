"""An agent bundle: everything one enrolled gateway needs, in memory and as a folder.

The folder is the contract between enrollment and the agent (``modelfleet agent --config
DIR/agent.yaml``)::

    agent.yaml          the agent's configuration (format: modelfleet.agent.config)
    client.crt          the gateway's client certificate (its identity; PEM)
    client.key          its private key (PEM, mode 0600)
    ca.crt              the fleet CA, to verify the fleet API's server certificate
    trust-policy.yaml   the TrustPolicy the agent verifies models against (its own copy)

Enrollment writes the identity part of ``agent.yaml`` (gateway, fleet URL, TLS files, data dir,
trust policy, intervals); the agent reads and validates it, and may be given more (health
check, metrics) by hand. ``tests/unit/fleet/test_bundle.py`` keeps writer and reader in step.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_FLEET_URL = "https://localhost:8443"
TRUST_POLICY_FILE = "trust-policy.yaml"
AGENT_CONFIG_FILE = "agent.yaml"


@dataclass(frozen=True)
class Bundle:
    """Everything one gateway agent needs, in memory; :meth:`write` puts it in a folder."""

    gateway: str
    namespace: str
    fingerprint: str
    not_after: dt.datetime
    fleet_url: str
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    trust_policy: bytes | None = None
    data_dir: str = "data"
    poll_interval: float = 30.0
    report_interval: float = 60.0
    labels: Mapping[str, str] = field(default_factory=dict)

    def agent_yaml(self) -> dict[str, Any]:
        """``agent.yaml`` for this bundle, paths relative to the bundle folder."""
        out: dict[str, Any] = {
            "apiVersion": "modelfleet.dev/v1alpha1",
            "kind": "AgentConfig",
            "gateway": self.gateway,
        }
        if self.namespace:
            out["namespace"] = self.namespace
        return out | {
            "fleetURL": self.fleet_url,
            "tls": {"cert": "client.crt", "key": "client.key", "ca": "ca.crt"},
            "dataDir": str(Path(self.data_dir).expanduser()),
            "trustPolicy": TRUST_POLICY_FILE,
            "pollInterval": _seconds(self.poll_interval),
            "reportInterval": _seconds(self.report_interval),
        }

    def write(self, folder: Path) -> Path:
        """Write ``agent.yaml``, ``client.crt``, ``client.key`` (0600), ``ca.crt`` and the trust
        policy into ``folder`` (created, 0700); returns the path of ``agent.yaml``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write(folder / "client.crt", self.cert_pem, 0o644)
        _write(folder / "client.key", self.key_pem, 0o600)
        _write(folder / "ca.crt", self.ca_pem, 0o644)
        if self.trust_policy is not None:
            _write(folder / TRUST_POLICY_FILE, self.trust_policy, 0o644)
        path = folder / AGENT_CONFIG_FILE
        text = yaml.safe_dump(self.agent_yaml(), sort_keys=False, width=100)
        _write(path, text.encode(), 0o644)
        return path


def _seconds(value: float) -> str:
    return f"{int(value)}s" if value >= 1 and float(value).is_integer() else f"{value * 1000:g}ms"


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)

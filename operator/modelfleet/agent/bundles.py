"""Where simulated gateways come from: bundle folders, one per enrolled gateway.

Yields :class:`~modelfleet.agent.config.AgentConfig` objects, one per gateway, each with its own
client certificate and data dir; :mod:`modelfleet.agent.simulator` runs them. Enrolling gateways
for real needs the cluster and so lives with the command (``modelfleet simulate --gateways N``),
not in the agent package, which imports no Kubernetes client.
"""

from __future__ import annotations

from pathlib import Path

from modelfleet.agent.config import AgentConfig, load_agent_config
from modelfleet.errors import ConfigError


def load_bundles(folder: Path) -> list[AgentConfig]:
    """Every ``*/agent.yaml`` under ``folder`` (one sub-folder per enrolled gateway)."""
    paths = sorted(folder.glob("*/agent.yaml"))
    if not paths:
        raise ConfigError(f"no */agent.yaml under {folder}: expected one bundle folder per gateway")
    configs = [load_agent_config(p) for p in paths]
    names = [c.gateway for c in configs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{folder}: two bundles name the same gateway")
    return configs

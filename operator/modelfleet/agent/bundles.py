"""Where simulated gateways come from: real enrollment of N gateways, or bundle folders.

Both yield :class:`~modelfleet.agent.config.AgentConfig` objects, one per gateway, each with its
own client certificate and data dir; :mod:`modelfleet.agent.simulator` runs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelfleet.agent.behaviour import draw
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


def enroll_simulated(
    api: Any,
    count: int,
    *,
    namespace: str,
    out_dir: Path,
    fleet_url: str,
    trust_policy: bytes,
    prefix: str = "sim",
    labels: Mapping[str, str] | None = None,
    label_splits: Sequence[tuple[str, str, float]] = (),
    ca_namespace: str | None = None,
    seed: int = 0,
) -> list[AgentConfig]:
    """Enroll ``count`` gateways for real (EdgeGateway + client certificate each) and write
    their bundles under ``out_dir/<name>``. ``label_splits`` adds ``key=value`` to the share
    of gateways given by the fraction (e.g. ``("ring", "early", 0.1)``)."""
    from modelfleet.fleet.enroll import enroll_gateways
    from modelfleet.fleet.secrets import load_fleet_ca

    ca = load_fleet_ca(api, ca_namespace or namespace)
    width = max(4, len(str(count - 1)))
    wanted = []
    for i in range(count):
        name = f"{prefix}-{i:0{width}d}"
        gw_labels = dict(labels or {})
        for key, value, fraction in label_splits:
            if draw(seed, "label", key, name) < fraction:
                gw_labels[key] = value
        wanted.append((name, gw_labels))
    bundles = enroll_gateways(
        api,
        wanted,
        namespace=namespace,
        ca=ca,
        fleet_url=fleet_url,
        trust_policy=trust_policy,
        renew=True,
    )
    return [load_agent_config(b.write(out_dir / b.gateway)) for b in bundles]

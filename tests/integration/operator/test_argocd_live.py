"""Argo CD's Lua engine on what the real operator writes, and its actions driving the operator.

The customizations of integrations/argocd/argocd-cm.yaml run in Argo CD's own engine
(tests/go/argocd/cmd/argocd-lua: Argo CD's settings manager, gitops-engine's GetResourceHealth,
lua.VM) on the live ModelRelease at each phase of a real rollout; every action is run the way
Argo CD's API server runs it (the JSON merge patch of live and returned object) and applied with
``kubectl patch --type=merge``, and the real operator acts on it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelfleet.devcluster import ControlPlane
from tests.unit.argocd.gomodule import ROOT, run_go

from .artifacts import Artifacts, rollout_steps
from .cluster import Api, canary, establish, status_where
from .fleet import SimulatedFleet

pytestmark = pytest.mark.cluster


ARGOCD_CM = ROOT / "integrations" / "argocd" / "argocd-cm.yaml"
LONG_BAKE = rollout_steps("1h", "1h", "1h")


@pytest.fixture(scope="session")
def argocd_lua(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("argocd-lua") / "argocd-lua"
    proc = run_go("build", "-o", str(binary), "./cmd/argocd-lua", timeout=1500)
    assert proc.returncode == 0, f"go build ./cmd/argocd-lua:\n{proc.stdout}\n{proc.stderr}"
    return binary


class ArgoCD:
    """What Argo CD would show and do for the release ``detector``."""

    def __init__(self, binary: Path, api: Api, cp: ControlPlane) -> None:
        self.binary, self.api, self.cp = binary, api, cp

    def _run(self, obj: dict[str, Any], *args: str) -> Any:
        proc = subprocess.run(
            [str(self.binary), str(ARGOCD_CM), *args],
            input=json.dumps(obj), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def health(self) -> tuple[str, str]:
        h = self._run(self.api.release("detector"), "health")
        return h["status"], h["message"]

    def enabled(self) -> set[str]:
        actions = self._run(self.api.release("detector"), "actions")
        return {a["name"] for a in actions if not a.get("disabled")}

    def run(self, action: str) -> str:
        """Run ``action`` as Argo CD's API server does; the action id it asked for."""
        live = self.api.release("detector")
        patch = self._run(live, "action", action)
        self.cp.kubectl(
            "patch", "modelrelease", "detector", "-n", self.api.namespace,
            "--type=merge", "-p", json.dumps(patch),
        )  # fmt: skip
        return f"{action}-{live['metadata']['resourceVersion']}"


@pytest.fixture
def argo(argocd_lua: Path, api: Api, control_plane: ControlPlane) -> ArgoCD:
    return ArgoCD(argocd_lua, api, control_plane)


@pytest.mark.usefixtures("operator")
def test_argo_cd_follows_a_real_rollout_and_its_actions_drive_the_operator(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, argo: ArgoCD
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=40)
    assert argo.health() == ("Healthy", "Version 1.0.0 runs on every selected gateway")
    assert argo.enabled() == set()

    canary(api, artifacts, "2.0.0", LONG_BAKE)
    status, message = argo.health()
    assert (status, message.startswith("Rolling out 2.0.0 at step canary (1/3)")) == (
        "Progressing",
        True,
    ), message
    assert argo.enabled() == {"promote", "abort", "pause"}

    action_id = argo.run("promote")
    st = status_where(api, "promoted", lambda s: s["rollout"].get("lastActionId") == action_id)
    assert st["rollout"]["step"] == 1
    assert argo.health()[1].startswith("Rolling out 2.0.0 at step half (2/3)")

    argo.run("pause")
    status_where(api, "paused", lambda s: s.get("phase") == "Paused")
    assert argo.health() == (
        "Suspended",
        "Rollout of 2.0.0 paused by spec.paused at step half (2/3)",
    )
    assert argo.enabled() == {"promote", "abort", "resume"}
    argo.run("resume")
    status_where(api, "resumed", lambda s: s.get("phase") == "Progressing")

    action_id = argo.run("abort")
    status_where(api, "aborted", lambda s: s.get("phase") == "Aborted")
    status, message = argo.health()
    assert status == "Degraded", message
    assert message.startswith("Aborted: ") and message.endswith("; gateways stay on 1.0.0")
    assert argo.enabled() == {"retry"}

    action_id = argo.run("retry")
    status_where(api, "retried", lambda s: s["rollout"].get("lastActionId") == action_id)
    status_where(api, "rolling again", lambda s: s.get("phase") == "Progressing")
    for step in range(3):
        action_id = argo.run("promote")
        status_where(
            api, f"promote {step}", lambda s, i=action_id: s["rollout"].get("lastActionId") == i
        )
    status_where(api, "2.0.0 stable", lambda s: s.get("phase") == "Succeeded")
    assert argo.health() == ("Healthy", "Version 2.0.0 runs on every selected gateway")

"""Render integrations/argocd/argocd-cm.yaml from the resource_customizations folder beside it.

The folder (``modelfleet.dev/ModelRelease/``, Argo CD's built-in layout) is the source; the
ConfigMap snippet carries the same scripts under argocd-cm's ``resource.customizations.*`` keys.
``python -m tests.unit.argocd.argocd_cm`` rewrites the snippet; the unit tests fail when it drifts.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CUSTOMIZATIONS = ROOT / "integrations" / "argocd"
SNIPPET = CUSTOMIZATIONS / "argocd-cm.yaml"

HEADER = """\
# argocd-cm entries for modelfleet.dev ModelRelease: health assessment and resource actions.
# Generated from modelfleet.dev/ModelRelease/ in this folder (Argo CD's resource_customizations
# layout) by `python -m tests.unit.argocd.argocd_cm`; tests/go/argocd runs both through Argo CD's
# own Lua engine. Merge into your argocd-cm, e.g.
#   kubectl -n argocd patch configmap argocd-cm --patch-file integrations/argocd/argocd-cm.yaml
# or with the Helm chart: configs.cm."resource.customizations.health.modelfleet.dev_ModelRelease".
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
"""


def _block(text: str, indent: int) -> str:
    """``text`` as the body of a YAML literal block scalar indented by ``indent`` spaces."""
    pad = " " * indent
    return "".join(pad + line if line.strip() else "\n" for line in text.splitlines(True))


def render() -> str:
    """The argocd-cm snippet for every <group>/<kind> folder under integrations/argocd."""
    out = [HEADER]
    for health in sorted(CUSTOMIZATIONS.glob("*/*/health.lua")):
        folder = health.parent
        key = f"{folder.parent.name}_{folder.name}"
        out.append(f"  resource.customizations.health.{key}: |\n")
        out.append(_block(health.read_text(encoding="utf-8"), 4))
        actions = folder / "actions"
        discovery = actions / "discovery.lua"
        if not discovery.exists():
            continue
        out.append(f"  resource.customizations.actions.{key}: |\n")
        out.append("    discovery.lua: |\n")
        out.append(_block(discovery.read_text(encoding="utf-8"), 6))
        out.append("    definitions:\n")
        for script in sorted(actions.glob("*/action.lua"), key=lambda p: _order(p.parent.name)):
            out.append(f"    - name: {script.parent.name}\n")
            out.append("      action.lua: |\n")
            out.append(_block(script.read_text(encoding="utf-8"), 8))
    return "".join(out)


def _order(name: str) -> tuple[int, str]:
    """Actions in the order the UI lists them best: the rollout's life, then the rest."""
    known = ["promote", "abort", "retry", "pause", "resume"]
    return (known.index(name) if name in known else len(known), name)


if __name__ == "__main__":
    SNIPPET.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {SNIPPET.relative_to(ROOT)}\n")

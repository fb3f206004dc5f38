"""The layering of DESIGN.md §6, checked on the source: imports point down, ``core`` stays pure,
``trust`` is the only door to sigstore and model_signing, and ``fetch`` (the one artifact
fetcher, below the operator and the agent) and the agent load no Kubernetes, kopf or Git
library."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "modelfleet"
IO_LIBRARIES = {"kopf", "kubernetes", "aiohttp", "sigstore", "model_signing", "yaml", "git",
                "requests", "urllib3", "prometheus_client", "socket", "subprocess"}  # fmt: skip
# What each layer may not import, by top-level package under modelfleet.
FORBIDDEN = {
    "core": {"api", "trust", "controller", "fleet", "agent", "gitops", "cli", "devcluster"},
    "api": {"trust", "controller", "fleet", "agent", "gitops", "cli", "devcluster"},
    "trust": {"controller", "fleet", "agent", "gitops", "cli"},
    "fetch": {"api", "trust", "controller", "fleet", "agent", "gitops", "cli", "devcluster",
              "demo", "enrollment", "kube", "protocol"},
}  # fmt: skip
#: Libraries the agent's image does not install: neither it nor what it imports may load them.
NOT_ON_GATEWAYS = {"kopf", "kubernetes", "git"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("path", modules("core"), ids=lambda p: p.name)
def test_core_does_no_io(path: Path) -> None:
    used = {name.split(".")[0] for name in imports(path)}
    assert not used & IO_LIBRARIES, f"{path.name} imports {sorted(used & IO_LIBRARIES)}"


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_point_down(layer: str) -> None:
    for path in modules(layer):
        for name in imports(path):
            parts = name.split(".")
            if parts[0] == "modelfleet" and len(parts) > 1:
                assert parts[1] not in FORBIDDEN[layer], f"{path} imports {name}"


def test_only_trust_imports_sigstore_and_model_signing() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in PACKAGE.rglob("*.py")
        if "trust" not in path.relative_to(PACKAGE).parts[:1]
        for name in imports(path)
        if name.split(".")[0] in {"sigstore", "model_signing", "sigstore_models"}
    ]
    assert offenders == []


def test_fetch_imports_no_cluster_or_git_library() -> None:
    for path in modules("fetch"):
        used = {name.split(".")[0] for name in imports(path)}
        assert not used & (NOT_ON_GATEWAYS | {"sigstore", "model_signing"}), path.name


def test_the_agent_and_the_fetcher_load_no_kopf_kubernetes_or_git() -> None:
    # Import every agent module (and so everything they import) in a fresh interpreter.
    code = (
        "import importlib, pkgutil, sys\n"
        "import modelfleet.agent as agent, modelfleet.fetch\n"
        "for m in pkgutil.iter_modules(agent.__path__):\n"
        "    importlib.import_module('modelfleet.agent.' + m.name)\n"
        f"print(sorted(k for k in {sorted(NOT_ON_GATEWAYS)!r} if k in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

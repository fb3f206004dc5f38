"""modelfleet.core stays pure: no I/O libraries, no clock reads, no imports of upper layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import modelfleet.core

CORE = Path(modelfleet.core.__file__).parent
MODULES = sorted(CORE.glob("*.py"))
FORBIDDEN_IMPORTS = (
    "kopf",
    "kubernetes",
    "aiohttp",
    "sigstore",
    "model_signing",
    "yaml",
    "requests",
    "socket",
    "subprocess",
    "asyncio",
    "time",
    "os",
    "modelfleet.api",
    "modelfleet.controller",
    "modelfleet.fleet",
    "modelfleet.agent",
    "modelfleet.trust",
    "modelfleet.gitops",
    "modelfleet.cli",
)
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_core_module_imports_nothing_impure(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bad = {
        name
        for name in _imports(tree)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IMPORTS)
    }
    assert bad == set()


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_core_module_never_reads_the_clock(path: Path) -> None:
    tree = ast.parse(path.read_text())
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert calls & CLOCK_CALLS == set()

"""The layering of DESIGN.md §6, checked on the source: one import contract per package
(:data:`MAY_IMPORT`: what each may import of modelfleet, so imports point down), ``core`` stays
pure, ``trust`` is the only door to sigstore and model_signing, and ``fetch`` (the one artifact
fetcher, below the operator and the agent) and the agent load no Kubernetes, kopf or Git
library.

A new package gets a line in :data:`MAY_IMPORT` (a test fails until it has one). The contract
tests (``-k contract``) also run in ``make lint``."""

from __future__ import annotations

import ast
import os
import shutil
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
    "kube": {"core", "trust", "controller", "fleet", "agent", "gitops", "cli", "devcluster",
             "demo", "enrollment", "protocol", "fetch"},
    # The edge protocol stands on core alone: the agent, the fleet API and api/ all use it.
    "protocol": {"api", "trust", "controller", "fleet", "agent", "gitops", "cli", "devcluster",
                 "demo", "drill", "enrollment", "kube", "fetch"},
    # Enrollment is below the fleet API and the agent: it writes the bundle the agent reads.
    "enrollment": {"trust", "controller", "fleet", "agent", "gitops", "cli", "devcluster",
                   "demo", "drill", "fetch"},
    # The agent runs on gateways: it reaches the fleet only over the edge protocol.
    "agent": {"controller", "fleet", "gitops", "cli", "devcluster", "demo", "drill",
              "enrollment", "kube"},
    # drills drive the stack as a user does (processes, the API server), never its insides
    "drill": {"controller", "fleet", "agent", "gitops"},
}  # fmt: skip
# The import contract of every package (and top-level module) under modelfleet: what it may
# import of modelfleet besides itself and ``errors`` (the root error type, which imports nothing),
# anywhere in a module (also inside functions). Packages of the target layout that do not exist
# yet are listed too: their contract holds the day they are created. Tiers, bottom up:
#   leaves      core, logs, certs (X.509 building blocks)
#   foundations api, fetch, trust, kube, protocol, enrollment
#   roles       controller (operator), fleet (fleet API), agent, gitops, devcluster
#   tools       demo, drill
#   entry       cli, __main__
FOUNDATIONS = {"api", "fetch", "trust", "kube", "protocol", "enrollment"}
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),  # the root error type: imports nothing
    "core": set(),  # pure rollout logic: nothing of ours but core
    "logs": set(),
    "certs": set(),
    "api": {"core", "protocol"},  # api/fields.py names the edge protocol's fields
    "fetch": set(),  # below the operator and the agent: not even api (see FORBIDDEN)
    "trust": {"core", "api", "fetch"},
    "kube": {"core", "api", "logs"},
    "protocol": {"core"},
    "enrollment": {"core", "api", "certs", "kube", "protocol", "trust"},
    # The operator and the fleet API never import gitops (their image has no git).
    "controller": {"core", "logs", "api", "fetch", "trust", "kube"},
    "fleet": {"core", "logs", "certs", "api", "trust", "kube", "protocol", "enrollment"},
    # The agent imports neither fleet nor controller nor kube (it installs without kubernetes).
    "agent": {"core", "logs", "certs", "api", "fetch", "trust", "protocol", "enrollment"},
    "gitops": {"core", "logs", "api", "fetch", "trust", "kube"},
    "devcluster": {"certs", "logs"},
    "demo": {"core", "logs", "certs", *FOUNDATIONS, "controller", "fleet", "agent", "gitops",
             "devcluster"},
    "drill": {"core", "logs", "certs", *FOUNDATIONS, "controller", "fleet", "agent", "gitops",
              "devcluster", "demo"},
    "cli": {"core", "logs", "certs", *FOUNDATIONS, "controller", "fleet", "agent", "gitops",
            "devcluster", "demo", "drill"},
    "__main__": {"cli"},
}  # fmt: skip
#: Imports that break the contract today, each to be removed. An entry that no longer occurs
#: fails :func:`test_contract_known_breaks_still_exist`: delete it then.
KNOWN_BREAKS: dict[tuple[str, str], str] = {}


def _our_imports(path: Path) -> set[str]:
    """The modelfleet packages (or top-level modules) ``path`` imports, by first name."""
    found = set()
    for name in imports(path):
        parts = name.split(".")
        if parts[0] == "modelfleet" and len(parts) > 1:
            found.add(parts[1])
    return found


def _units() -> list[str]:
    """Every package and top-level module under modelfleet (``__init__`` aside)."""
    return sorted(
        p.name if p.is_dir() else p.stem
        for p in PACKAGE.iterdir()
        if (p.is_dir() and (p / "__init__.py").is_file())
        or (p.suffix == ".py" and p.stem != "__init__")
    )


def _unit_files(unit: str) -> list[Path]:
    single = PACKAGE / f"{unit}.py"
    return [single] if single.is_file() else modules(unit)


def test_contract_every_package_has_one() -> None:
    missing = [u for u in _units() if u not in MAY_IMPORT]
    assert missing == [], f"add an import contract to MAY_IMPORT for {missing}"


def test_contract_tiers_form_no_cycle() -> None:
    """The contracts are a layering: no package may (transitively) import itself."""

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(MAY_IMPORT[start])
        while todo:
            unit = todo.pop()
            if unit not in seen:
                seen.add(unit)
                todo.extend(MAY_IMPORT.get(unit, set()))
        return seen

    assert [u for u in MAY_IMPORT if u in reach(u)] == []


@pytest.mark.parametrize("unit", sorted(MAY_IMPORT))
def test_contract_holds(unit: str) -> None:
    """Harmless for a package that does not exist yet: it has no modules to check."""
    allowed = MAY_IMPORT[unit] | {unit, "errors"}
    broken = [
        f"{path.relative_to(PACKAGE)} imports modelfleet.{target}"
        for path in _unit_files(unit)
        for target in sorted(_our_imports(path) - allowed)
        if (path.relative_to(PACKAGE).as_posix(), target) not in KNOWN_BREAKS
    ]
    assert broken == [], f"{unit} may import only {sorted(MAY_IMPORT[unit])}"


def test_contract_known_breaks_still_exist() -> None:
    stale = [
        f"{where} -> {target}"
        for where, target in KNOWN_BREAKS
        if not (PACKAGE / where).is_file() or target not in _our_imports(PACKAGE / where)
    ]
    assert stale == [], f"fixed: remove from KNOWN_BREAKS {stale}"


def test_contract_operator_and_fleet_api_never_import_gitops() -> None:
    assert "gitops" not in MAY_IMPORT["controller"] | MAY_IMPORT["fleet"]


def test_contract_agent_imports_neither_fleet_nor_controller_nor_kube() -> None:
    assert not MAY_IMPORT["agent"] & {"fleet", "controller", "kube", "gitops", "cli"}


def test_contract_core_imports_nothing_of_ours_but_core() -> None:
    assert MAY_IMPORT["core"] == set()


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


# What each deployed role must never load: the operator and the fleet API run in an image without
# git (GitOps stays in the CLI and `modelfleet sync`); the agent runs on small gateways with the
# `agent` extra only (no Kubernetes client, no kopf, no GitPython).
ROLE_FORBIDDEN = {
    "controller": {"modelfleet.gitops", "git", "gitdb"},
    "fleet": {"modelfleet.gitops", "git", "gitdb", "modelfleet.controller", "kopf"},
    "agent": {
        "modelfleet.gitops", "modelfleet.fleet", "modelfleet.controller", "modelfleet.devcluster",
        "modelfleet.demo", "git", "gitdb", "kopf", "kubernetes",
    },
}  # fmt: skip


def _module_path(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != "modelfleet":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _loaded_by(name: str) -> set[str]:
    """What importing module ``name`` runs: its parent packages' ``__init__`` and itself."""
    parts = name.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


def import_closure(start: set[str]) -> set[str]:
    """Every module name (modelfleet's followed, others as named) that importing ``start``
    may load, following imports anywhere in a module (also those inside functions)."""
    seen: set[str] = set()
    todo = [m for s in start for m in _loaded_by(s)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_path(name)
        if path is None:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
                targets += [
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if _module_path(f"{node.module}.{a.name}") is not None
                ]
            for target in targets:
                todo.extend(m for m in _loaded_by(target) if m not in seen)
    return seen


def _hits(loaded: set[str], forbidden: set[str]) -> list[str]:
    return sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("layer", sorted(ROLE_FORBIDDEN))
def test_deployed_roles_never_import_what_their_extra_lacks(layer: str) -> None:
    """controller/ and fleet/ reach no git (GitPython fails to import without a git binary);
    agent/ reaches neither fleet/ nor controller/ nor kopf, kubernetes or git. Checked on the
    whole import closure, parent packages included: importing ``modelfleet.gitops.revision`` (a module since removed)
    once pulled GitPython into the operator through ``modelfleet/gitops/__init__.py``."""
    for path in modules(layer):
        name = ".".join(("modelfleet", *path.relative_to(PACKAGE).with_suffix("").parts))
        name = name.removesuffix(".__init__")
        hits = _hits(import_closure({name}), ROLE_FORBIDDEN[layer])
        assert hits == [], f"{name} loads {hits}"


def test_the_closure_walker_sees_a_package_init() -> None:
    # The regression this guards against: a pure module inside gitops still loads gitops/__init__.
    assert "git" in import_closure({"modelfleet.gitops.errors"})


ROLE_ENTRIES = {
    "operator": ["modelfleet.controller.handlers", "modelfleet.controller.runner"],
    "fleet API": ["modelfleet.fleet.app", "modelfleet.fleet.process", "modelfleet.cli.fleet_api"],
    "agent": ["modelfleet.agent.__main__", "modelfleet.cli.agent"],
}


def _path_without_git() -> str:
    path = os.path.dirname(sys.executable)
    assert shutil.which("git", path=path) is None
    return path


@pytest.mark.parametrize("role", sorted(ROLE_ENTRIES))
def test_role_entry_points_import_with_git_off_path(role: str) -> None:
    """With no git binary (as in the image), the role's modules import and load no GitPython."""
    code = (
        "import importlib, sys\n"
        f"for name in {ROLE_ENTRIES[role]!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('git', 'gitdb')"
        " or m.startswith('modelfleet.gitops'))\n"
        "assert not bad, bad\n"
    )
    env = {"PATH": _path_without_git(), "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize(
    "argv", [["operator", "--help"], ["fleet-api", "--help"], ["agent", "--help"], ["--help"]]
)
def test_commands_run_with_git_off_path(argv: list[str]) -> None:
    env = {"PATH": _path_without_git(), "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run(
        [sys.executable, "-m", "modelfleet", *argv],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: modelfleet" in done.stdout


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

"""Each role's extra, installed for real: one wheel of this checkout, one clean venv per extra
(pip with this machine's warm cache), and the role's own command run from that venv.

The evidence that ``pip install 'modelfleet[agent]'`` gives a working agent without kopf,
the Kubernetes client or GitPython, that the operator and the fleet API start from their own
extras, and that a command whose extra is missing says which one to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

NOT_IN_AGENT = ("kopf", "kubernetes", "git")


def _run(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, capture_output=True, text=True, check=False, timeout=600, env=env, cwd=cwd
    )


def _git() -> dict[str, str]:
    """The environment that points GitPython at this machine's git (off the venv's PATH)."""
    git = shutil.which("git")
    assert git is not None, "the test machine has git"
    return {"GIT_PYTHON_GIT_EXECUTABLE": git}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One wheel of the checkout, shared by every venv."""
    out = tmp_path_factory.mktemp("wheel")
    done = _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out),
                 str(ROOT)])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("modelfleet-*.whl")
    return built


class Venv:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.bin = path / "bin"

    def run(
        self, program: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        # PATH: the venv only (no git binary either: as in the images)
        base = {"PATH": str(self.bin), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
        return _run([str(self.bin / program), *args], env={**base, **(env or {})}, cwd=self.path)

    def importable(self, module: str) -> bool:
        code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
        return self.run("python", "-c", code).returncode == 0


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Venv]:
    """``venv(extra)``: a clean venv with ``modelfleet[extra]`` installed, made once."""
    made: dict[str, Venv] = {}

    def make(extra: str) -> Venv:
        if extra not in made:
            path = tmp_path_factory.mktemp(f"venv-{extra}")
            done = _run([sys.executable, "-m", "venv", str(path)])
            assert done.returncode == 0, done.stderr
            done = _run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet",
                         "--no-compile", f"{wheel}[{extra}]"])  # fmt: skip
            assert done.returncode == 0, f"pip install modelfleet[{extra}]: {done.stderr[-3000:]}"
            made[extra] = Venv(path)
        return made[extra]

    return make


def test_agent_extra_runs_the_agent_without_kopf_kubernetes_or_git(
    venv: Callable[[str], Venv],
) -> None:
    agent = venv("agent")
    done = agent.run("modelfleet-agent", "--help")
    assert done.returncode == 0, done.stderr
    assert "--config" in done.stdout
    for module in NOT_IN_AGENT:
        assert not agent.importable(module), f"{module} is installed with modelfleet[agent]"
    assert agent.importable("aiohttp")
    # verification is in the base install: the agent verifies on the gateway
    for command in ("sign", "verify", "simulate"):
        done = agent.run("modelfleet", command, "--help")
        assert done.returncode == 0, f"{command}: {done.stderr}"


def test_agent_extra_names_the_extra_a_server_command_needs(venv: Callable[[str], Venv]) -> None:
    agent = venv("agent")
    done = agent.run("modelfleet", "operator", "--namespace", "default")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "modelfleet operator needs the 'operator' extra: pip install 'modelfleet[operator]' "
        "(module 'kopf' is not installed)"
    ]
    done = agent.run("modelfleet", "release", "--help")
    assert done.returncode == 1
    assert "needs the 'gitops' extra: pip install 'modelfleet[gitops]'" in done.stderr
    assert "Traceback" not in done.stderr
    listed = agent.run("modelfleet", "--help")
    assert listed.returncode == 0, listed.stderr
    assert "(unavailable: needs pip install 'modelfleet[gitops]')" in listed.stdout


def test_operator_extra_runs_the_operator(venv: Callable[[str], Venv]) -> None:
    operator = venv("operator")
    done = operator.run("modelfleet", "operator", "--help")
    assert done.returncode == 0, done.stderr
    assert "--all-namespaces" in done.stdout
    assert not operator.importable("git")
    code = "import modelfleet.controller.handlers, modelfleet.controller.runner"
    done = operator.run("python", "-c", code)
    assert done.returncode == 0, done.stderr


def test_fleet_extra_runs_the_fleet_api(venv: Callable[[str], Venv]) -> None:
    fleet = venv("fleet")
    for command in ("fleet-api", "fleet-ca", "gateway"):
        done = fleet.run("modelfleet", command, "--help")
        assert done.returncode == 0, f"{command}: {done.stderr}"
    assert not fleet.importable("git")
    assert not fleet.importable("kopf")


def test_gitops_extra_runs_the_git_commands(venv: Callable[[str], Venv]) -> None:
    gitops = venv("gitops")
    assert gitops.importable("git")
    # GitPython needs the git executable; the venv's PATH has none, and the CLI says so
    done = gitops.run("modelfleet", "release", "--help")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "modelfleet release needs the git executable: install git, or set "
        "GIT_PYTHON_GIT_EXECUTABLE to its path"
    ]
    for command in ("release", "rollback", "history", "sync"):
        done = gitops.run("modelfleet", command, "--help", env=_git())
        assert done.returncode == 0, f"{command}: {done.stderr}"


def test_all_extra_has_every_command(venv: Callable[[str], Venv]) -> None:
    everything = venv("all")
    done = everything.run("modelfleet", "--help", env=_git())
    assert done.returncode == 0, done.stderr
    assert "unavailable" not in done.stdout
    for module in ("kopf", "kubernetes", "git", "aiohttp", "jsonschema", "ruamel"):
        assert everything.importable(module), module

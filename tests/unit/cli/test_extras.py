"""Each role's extra: the CLI's table of what each extra brings matches pyproject.toml, and a
command whose extra is missing fails with one line naming the extra to install."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from modelfleet.cli import main

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"
# distribution name -> the top-level module it installs
IMPORT_NAMES = {
    "aiohttp": "aiohttp",
    "prometheus-client": "prometheus_client",
    "kopf": "kopf",
    "kubernetes": "kubernetes",
    "uvloop": "uvloop",
    "gitpython": "git",
    "jsonschema": "jsonschema",
    "ruamel.yaml": "ruamel",
    "pillow": "PIL",
}


def _name(requirement: str) -> str:
    for stop in "<>=!~;[ ":
        requirement = requirement.split(stop, maxsplit=1)[0]
    return requirement.strip().lower()


def _optional() -> dict[str, list[str]]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return dict(project["optional-dependencies"])


def test_extra_modules_match_pyproject() -> None:
    optional = _optional()
    for extra, modules in main.EXTRA_MODULES.items():
        assert {IMPORT_NAMES[_name(r)] for r in optional[extra]} == modules, extra


def test_all_is_every_role_and_dev_builds_on_all() -> None:
    optional = _optional()
    (everything,) = optional["all"]
    assert everything.startswith("modelfleet[")
    assert set(everything.removeprefix("modelfleet[").rstrip("]").split(",")) == set(
        main.EXTRA_MODULES
    )
    assert "modelfleet[all]" in optional["dev"]


def test_the_agent_extra_is_small() -> None:
    assert not main.EXTRA_MODULES["agent"] & {"kopf", "kubernetes", "git"}
    base = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    assert not {_name(r) for r in base} & {"kopf", "kubernetes", "gitpython", "aiohttp"}


def test_every_command_extra_exists() -> None:
    assert set(main.COMMAND_EXTRAS) <= set(main.COMMANDS)
    assert set(main.COMMAND_EXTRAS.values()) <= {*main.EXTRA_MODULES, "all"}


def _without(modules: list[str], *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``modelfleet argv`` in a process where ``modules`` cannot be imported, as in a venv
    without their extra."""
    code = (
        "import sys\n"
        f"for name in {modules!r}:\n"
        "    sys.modules[name] = None\n"
        "from modelfleet.cli.main import main\n"
        f"sys.exit(main({list(argv)!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )


@pytest.mark.parametrize(
    ("blocked", "argv", "extra"),
    [
        (["kopf"], ["operator", "-n", "default"], "operator"),
        (["aiohttp"], ["fleet-api", "--help"], "fleet"),
        (["kubernetes"], ["fleet-api", "--namespace", "default"], "fleet"),
        (["git"], ["release", "--help"], "gitops"),
        (["kubernetes"], ["gateway", "list"], "fleet"),
        (["kubernetes"], ["status", "--help"], "fleet"),
        (["aiohttp"], ["status", "-n", "default"], "fleet"),
    ],
)
def test_a_missing_extra_is_one_actionable_line(blocked: list[str], argv: list[str], extra: str) -> None:  # fmt: skip
    done = _without(blocked, *argv)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"modelfleet {argv[0]} needs the '{extra}' extra: pip install 'modelfleet[{extra}]' "
        f"(module {blocked[0]!r} is not installed)"
    ]


def test_help_lists_commands_whose_extra_is_missing() -> None:
    done = _without(["git", "aiohttp"], "--help")
    assert done.returncode == 0, done.stderr
    for command in main.COMMANDS:
        assert command in done.stdout
    assert "(unavailable: needs pip install 'modelfleet[gitops]')" in done.stdout
    assert "(unavailable: needs pip install 'modelfleet[fleet]')" in done.stdout


def test_a_missing_base_module_is_not_blamed_on_an_extra() -> None:
    done = _without(["cryptography"], "sign", "--help")
    assert done.returncode != 0
    assert "extra" not in done.stderr

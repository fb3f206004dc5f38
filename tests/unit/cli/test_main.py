"""The ``modelfleet`` dispatcher: every command is listed, found and imported alone."""

from __future__ import annotations

import argparse
import subprocess
import sys

from modelfleet.cli import main


def registered(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def test_the_command_table_names_exactly_what_the_modules_register() -> None:
    assert registered(main.build_parser()) == set(main.COMMANDS)
    assert set(main.COMMANDS.values()) == set(main.COMMAND_MODULES)


def test_one_command_imports_only_its_own_module() -> None:
    for command, module in main.COMMANDS.items():
        assert registered(main.build_parser(command)) >= {command}
        others = {m for m in main.COMMAND_MODULES if m != module}
        assert not registered(main.build_parser(command)) & {
            c for c, m in main.COMMANDS.items() if m in others
        }


def test_help_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "modelfleet", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in main.COMMANDS:
        assert command in out


def test_agent_does_not_load_the_operator_or_the_signer() -> None:
    code = (
        "import sys; from modelfleet.cli import main; main.build_parser('agent'); "
        "print(sorted(m for m in ('kopf', 'sigstore', 'model_signing', 'git') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_unknown_command_is_one_line_of_usage() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "modelfleet", "no-such-command"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "invalid choice: 'no-such-command'" in proc.stderr
    assert "Traceback" not in proc.stderr

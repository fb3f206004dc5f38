"""``modelfleet drill``: the help explains every scenario; bad flags are one line, before
anything starts."""

from __future__ import annotations

import pytest

from modelfleet.cli.main import main
from modelfleet.drill.scenarios import CATALOGUE, SCENARIOS


def test_help_lists_and_explains_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["drill", "--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for scenario in CATALOGUE:
        assert f"{scenario.name}: " in out
        assert " ".join((scenario.__doc__ or "").split())[:60] in out
    for words in ("time to detect", "time to roll back", "--detect-target", "--rollback-target"):
        assert words in out.lower()


def test_scenario_names_are_unique_and_prefixes_distinct() -> None:
    assert len(SCENARIOS) == len(CATALOGUE) == 8
    assert len({s.prefix for s in CATALOGUE}) == 8


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gateways", "2"], "--gateways must be at least 4"),
        (["--detect-target", "soon"], "--detect-target: 'soon' is not a duration"),
        (["--namespace", "Not_A_Name"], "is not a valid namespace name"),
        (["--kubeconfig", "/nonexistent/kubeconfig"], "no such file"),
        (["--report-interval", "0"], "--report-interval must be a positive"),
    ],
)
def test_bad_flags_fail_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drill", "canary-regression", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_an_unknown_scenario_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["drill", "meteor-strike"])
    assert "invalid choice: 'meteor-strike'" in capsys.readouterr().err

"""``modelfleet drill --deployed``: its flags are explained in --help, and a flag missing or out
of place is one line, before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfleet.cli.main import main


def test_help_explains_the_deployed_mode(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["drill", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for words in ("--deployed", "--fleet-api URL", "--serve-artifacts HOST:PORT",
                  "--artifact-url-base URL", "--operator-restart-command COMMAND",
                  "--operator-selector SELECTOR", "leader Lease", "--allow-host"):  # fmt: skip
        assert words in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fleet-api", "https://f:8443"], "--fleet-api needs --deployed"),
        (["--operator-restart-command", "true"], "--operator-restart-command needs --deployed"),
        (["--deployed", "--fleet-api", "https://f:8443"], "--deployed needs --kubeconfig"),
        (["--deployed", "KUBECONFIG"], "--deployed needs --fleet-api URL"),
        (["--deployed", "KUBECONFIG", "--fleet-api", "http://f:8080"], "expected https://HOST"),
        (["--deployed", "KUBECONFIG", "--fleet-api", "https://f", "--serve-artifacts", "8088"],
         "--serve-artifacts '8088': expected HOST:PORT"),
        (["--deployed", "KUBECONFIG", "--fleet-api", "https://f", "--preflight-timeout", "x"],
         "--preflight-timeout: 'x' is not a duration"),
    ],
)  # fmt: skip
def test_deployed_flags_fail_in_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\n")
    argv = [
        a for x in argv for a in (["--kubeconfig", str(kubeconfig)] if x == "KUBECONFIG" else [x])
    ]
    assert main(["drill", "canary-regression", "--workdir", str(tmp_path / "w"), *argv]) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1


def test_several_scenarios_are_accepted_on_one_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["drill", "canary-regression", "operator-crash", "--gateways", "2"]) == 1
    assert "--gateways must be at least 4" in capsys.readouterr().err

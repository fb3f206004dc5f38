"""Every failure a user can cause is one plain line naming what and where, exit status 1, never a
traceback (issue 11, item 9): missing file, permission denied, invalid YAML, a bad kubeconfig,
an API server that cannot be reached; the operator with a bad kubeconfig exits at once."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelfleet.cli import failures, main


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nobody listens


def kubeconfig(path: Path, server: str, **user: str) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": user or {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err and "unexpected" not in err, err
    return err.strip()


def test_a_missing_kubeconfig_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.kubeconfig"
    line = one_line(capsys, ["status", "--kubeconfig", str(missing)])
    assert line == f"modelfleet status: --kubeconfig {missing}: no such file or folder"


def test_a_kubeconfig_that_is_not_yaml_is_named_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.kubeconfig"
    bad.write_text("apiVersion: v1\nthis: is: not yaml\n")
    line = one_line(capsys, ["gateway", "list", "--kubeconfig", str(bad)])
    assert line.startswith(f"modelfleet gateway: --kubeconfig {bad}: not a kubeconfig: ")
    assert "invalid YAML at line 2, column 9" in line


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ({"current-context": "elsewhere"}, "no context named 'elsewhere'"),
        ({"current-context": None}, "no current-context (give --context or set one)"),
        ({"clusters": []}, "context 'x' names no cluster with a server"),
    ],
)
def test_a_kubeconfig_without_a_usable_context_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: dict[str, object], problem: str
) -> None:
    path = kubeconfig(tmp_path / "kc", "https://127.0.0.1:1")
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **edit}))
    line = one_line(capsys, ["sync", str(tmp_path), "--kubeconfig", str(path)])
    assert line == f"modelfleet sync: --kubeconfig {path}: {problem}"


def test_a_kubeconfig_naming_a_missing_client_key_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = kubeconfig(
        tmp_path / "kc",
        "https://127.0.0.1:1",
        **{"client-certificate": "a.crt", "client-key": "a.key"},
    )
    (tmp_path / "a.crt").write_text("x")  # relative to the kubeconfig's folder, as kubectl reads it
    line = one_line(capsys, ["fleet-ca", "init", "--kubeconfig", str(path)])
    assert line == f"modelfleet fleet-ca: --kubeconfig {path}: client-key a.key: no such file"


def test_kubeconfig_from_the_environment_is_checked_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "gone"))
    line = one_line(capsys, ["status"])
    assert line == f"modelfleet status: $KUBECONFIG {tmp_path / 'gone'}: no such file or folder"


@pytest.mark.parametrize(
    "argv",
    [["status", "-n", "x"], ["gateway", "list", "-n", "x"], ["fleet-ca", "init", "-n", "x"]],
    ids=lambda a: a[0],
)
def test_an_unreachable_api_server_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    port = closed_port()
    path = kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{port}")
    line = one_line(capsys, [*argv, "--kubeconfig", str(path)])
    assert "cannot reach the API server at " in line and f"127.0.0.1:{port}" in line
    assert line.endswith(failures.CLUSTER_HINT)


def test_an_unreadable_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    line = one_line(capsys, ["sign", "--key", str(folder), "--signature", "s", str(folder)])
    assert line == f"modelfleet sign: cannot read key {folder}: Is a directory"


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (
            FileNotFoundError(errno.ENOENT, "No such file", "/srv/a.yaml"),
            "/srv/a.yaml: no such file or folder",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/etc/k.pem"),
            "/etc/k.pem: permission denied",
        ),
        (
            IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp"),
            "/tmp: is a folder, expected a file",
        ),
    ],
)
def test_os_errors_name_the_file(exc: OSError, line: str) -> None:
    assert failures.report("x", exc) == f"modelfleet x: {line}"


def test_invalid_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("spec:\n  authorities: [unclosed\n")
    with path.open() as stream, pytest.raises(yaml.YAMLError) as info:
        yaml.safe_load(stream)
    line = failures.report("verify", info.value)
    assert line.startswith(f"modelfleet verify: {path}: invalid YAML at line 3, column 1: ")


def test_the_cause_of_a_wrapped_error_is_what_is_reported() -> None:
    try:
        try:
            raise PermissionError(errno.EACCES, "Permission denied", "/data/state.json")
        except OSError as inner:
            raise RuntimeError("saving failed") from inner
    except RuntimeError as outer:
        assert failures.report("agent", outer) == (
            "modelfleet agent: /data/state.json: permission denied"
        )


def test_an_unknown_error_says_how_to_see_the_traceback() -> None:
    line = failures.report("demo", ValueError("odd\nthing"))
    assert line == (
        "modelfleet demo: unexpected ValueError: odd thing (set MODELFLEET_DEBUG=1 for the traceback)"
    )


def test_the_operator_with_a_bad_kubeconfig_exits_with_one_line(tmp_path: Path) -> None:
    """It used to print kopf's traceback and retry its startup every 60 s, forever."""
    bad = kubeconfig(tmp_path / "kc", "https://127.0.0.1:1", **{"client-certificate": "gone.crt"})
    done = subprocess.run(
        [sys.executable, "-m", "modelfleet", "operator", "-n", "x", "--kubeconfig", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"modelfleet operator: --kubeconfig {bad}: client-certificate gone.crt: no such file\n"
    )

"""``modelfleet operator`` flags: sizes, intervals, namespaces."""

from __future__ import annotations

import argparse

import pytest

from modelfleet.cli.flags import byte_size
from modelfleet.cli.main import build_parser, main


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512", 512),
        ("512M", 512 * 1024**2),
        ("8G", 8 * 1024**3),
        ("1.5k", 1536),
        ("2GiB", 2 * 1024**3),
    ],
)
def test_sizes_take_binary_units(text: str, value: int) -> None:
    assert byte_size(text) == value


@pytest.mark.parametrize("text", ["", "lots", "-1", "0"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        byte_size(text)


def test_flags_parse() -> None:
    args = build_parser().parse_args(
        [
            "operator",
            "-n",
            "a",
            "-n",
            "b",
            "--interval",
            "2",
            "--max-artifact-bytes",
            "1G",
            "--log-format",
            "json",
        ]
    )
    assert args.namespace == ["a", "b"]
    assert args.interval == 2.0
    assert args.max_artifact_bytes == 1024**3
    assert args.log_format == "json"


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["operator", "-A", "--interval", "0"])


def test_namespaces_must_be_chosen(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operator"]) == 1
    assert "--namespace" in capsys.readouterr().err
    assert main(["operator", "-A", "-n", "x"]) == 1
    assert "exclude each other" in capsys.readouterr().err


def test_artifact_source_flags_parse() -> None:
    args = build_parser().parse_args(
        ["operator", "-A", "--allow-host", "models.example.com", "--allow-host", "*.cdn.example",
         "--allow-scheme", "http", "--allow-file-root", "/srv/models",
         "--plain-http-registry", "none", "--max-redirects", "2"]
    )  # fmt: skip
    assert args.allow_host == ["models.example.com", "*.cdn.example"]
    assert args.allow_scheme == ["http"] and args.allow_file_root == ["/srv/models"]
    assert args.plain_http_registry == ["none"] and args.max_redirects == 2
    defaults = build_parser().parse_args(["operator", "-A"])
    assert defaults.allow_host == [] and defaults.allow_file_root == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--allow-file-root", "/etc/passwd"], "not a folder"),
        (["--allow-host", "ex*ample.com"], "artifact sources"),
    ],
)
def test_bad_artifact_sources_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(["operator", "-A", *flags]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

"""The flags several commands share, defined once: where the cluster is (``--kubeconfig``,
``--namespace``, ``--context``), where the GitOps repository is (``--repo``, ``--releases-dir``,
``--branch``, ``--push``, ``--remote``), ``--json``, metrics, and the argument types and file
reads that go with them. A command that declares the cluster flags here has its kubeconfig
checked (:func:`modelfleet.cli.failures.check_kubeconfig`) before it runs, by ``main``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from modelfleet.errors import ConfigError
from modelfleet.logs import FORMATS

if TYPE_CHECKING:  # argparse's generic is not subscriptable at run time
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
    Group: TypeAlias = argparse.ArgumentParser | argparse._ArgumentGroup
T = TypeVar("T")
GIB = 1024**3


def command(
    sub: Subparsers, name: str, summary: str, description: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    """A command's parser: one-line ``summary`` for ``--help``, ``description`` and an
    ``epilog`` of examples; laid out as written when there is an epilog or the description has
    several lines, else wrapped."""
    hand_made = epilog or "\n" in description
    layout = argparse.RawDescriptionHelpFormatter if hand_made else argparse.HelpFormatter
    return sub.add_parser(
        name, help=summary, description=description, epilog=epilog, formatter_class=layout
    )


def verbs(parser: argparse.ArgumentParser) -> Subparsers:
    """The ``VERB`` sub-commands of a command (``gateway enroll``, ``dev-cluster up``)."""
    return parser.add_subparsers(dest="verb", metavar="VERB", required=True)


def kube(
    p: Group,
    namespace: str | None = "namespace (default: the kubeconfig context's)",
    *,
    context: bool = False,
    all_namespaces: bool = False,
    short: bool = True,
) -> None:
    """``--kubeconfig`` (checked before the command runs), and ``-n/--namespace`` unless
    ``namespace`` is ``None``; ``--context`` and ``-A/--all-namespaces`` on request."""
    p.add_argument(
        "--kubeconfig", type=Path, metavar="FILE",
        help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, else in-cluster credentials)",
    )  # fmt: skip
    if namespace is not None:
        p.add_argument(*(("-n",) if short else ()), "--namespace", metavar="NS", help=namespace)
    if context:
        p.add_argument("--context", help="kubeconfig context (default: its current-context)")
    if all_namespaces:
        p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    p.set_defaults(check_kubeconfig=True)


def repo(p: Group, *, releases_dir: bool = True) -> None:
    """``--repo`` (the GitOps repository) and ``--releases-dir``."""
    p.add_argument("--repo", type=Path, default=Path("."), help="GitOps repository (default: .)")
    if releases_dir:
        p.add_argument(
            "--releases-dir", default="releases", metavar="DIR",
            help="folder of the release files in the repository (default: releases)",
        )  # fmt: skip


def release(p: Group, metavar: str = "RELEASE", text: str | None = None) -> None:
    """The positional release: ``NAMESPACE/NAME``, ``NAME`` or the release file's path."""
    p.add_argument(
        "release", metavar=metavar, help=text or "NAMESPACE/NAME, NAME, or the release file's path"
    )


def push(p: Group, branch: str) -> None:
    """``--branch`` (help ``branch``), ``--push`` and ``--remote``."""
    p.add_argument("--branch", help=branch)
    p.add_argument("--push", action="store_true", help="push the result to --remote")
    p.add_argument("--remote", default="origin", help="remote to push to (default: origin)")


def json_output(p: Group, text: str = "print the result as JSON") -> None:
    p.add_argument("--json", action="store_true", help=text)


def log_format(p: Group, fields: str) -> None:
    """``--log-format text|json``; ``fields`` says what each JSON line carries."""
    p.add_argument(
        "--log-format", choices=FORMATS, default="text",
        help=f"json: one JSON object per line with {fields}, for log collectors "
        "(see docs/status.md)",
    )  # fmt: skip


def metrics(p: Group, host: str, what: str) -> None:
    """``--metrics-port`` (0: off) serving ``what``, and ``--metrics-host``."""
    p.add_argument(
        "--metrics-port", type=int, default=0, metavar="PORT",
        help=f"serve Prometheus metrics ({what}) on this port; 0 = off",
    )  # fmt: skip
    p.add_argument("--metrics-host", default=host, help="address for --metrics-port")


def paths(p: Group, flag: str, metavar: str, text: str) -> None:
    """A repeatable file flag collecting paths in order."""
    p.add_argument(flag, action="append", default=[], type=Path, metavar=metavar, help=text)


def words(p: Group, flag: str, metavar: str, text: str) -> None:
    """A repeatable flag collecting strings in order."""
    p.add_argument(flag, action="append", default=[], metavar=metavar, help=text)


def seconds(p: Group, rows: Iterable[tuple[str, float, str]], *, positive: bool = True) -> None:
    """Flags of seconds, one ``(flag, default, help)`` row each."""
    for flag, default, text in rows:
        p.add_argument(
            flag, type=positive_number if positive else float, default=default,
            metavar="SECONDS", help=text,
        )  # fmt: skip


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def byte_size(text: str) -> int:
    """``512M``, ``8G``, ``1TiB`` or a number of bytes."""
    units = {"k": 1024, "m": 1024**2, "g": GIB, "t": 1024**4}
    raw = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = units.get(raw[-1:], 1)
    number = raw[:-1] if raw[-1:] in units else raw
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 512M or 8G") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def read_bytes(path: Path, what: str) -> bytes:
    """The file's bytes, or a one-line :class:`ConfigError` naming ``what`` and the file."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def options(cls: type[T], args: argparse.Namespace, **given: Any) -> T:
    """A dataclass ``cls`` from the flags of the same name, ``given`` overriding."""
    found: Mapping[str, Any] = vars(args)
    named = {f.name: found[f.name] for f in fields(cls) if f.init and f.name in found}  # type: ignore[arg-type]
    return cls(**{**named, **given})

"""The Go test module tests/go/argocd: how to run Go on it, and where its Argo CD source is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
GO_MODULE = ROOT / "tests" / "go" / "argocd"
ARGO_CD = "github.com/argoproj/argo-cd/v3"


def go() -> str:
    """The ``go`` on PATH; an assertion failure (not a skip) saying so when there is none."""
    found = shutil.which("go")
    assert found is not None, (
        "go is not on PATH: the Argo CD tests (tests/go/argocd) need Go 1.25 or newer "
        "(https://go.dev/dl/)"
    )
    return found


def go_env() -> dict[str, str]:
    """Modules exactly as the committed go.mod/go.sum say, built by the Go on PATH."""
    return {**os.environ, "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local"}


def run_go(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [go(), *args],
        cwd=GO_MODULE,
        env=go_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def argo_cd_source() -> Path:
    """The Argo CD module the Go tests use, in the module cache (downloaded if missing)."""
    proc = run_go("mod", "download", "-json", ARGO_CD, timeout=600)
    assert proc.returncode == 0, f"go mod download {ARGO_CD}:\n{proc.stdout}\n{proc.stderr}"
    info = json.loads(proc.stdout)
    assert "Error" not in info, info["Error"]
    return Path(info["Dir"])


#: Folders of the Argo CD source that no Go package needs.
_NOT_GO = ("docs", "ui", "manifests", ".github")


def upstream_checkout(cache: Path) -> Path:
    """A writable copy of the Argo CD module source under ``cache`` (made once per version)."""
    source = argo_cd_source()
    dest = cache / source.name  # github.com/argoproj/argo-cd/v3@vX.Y.Z → argo-cd/v3@vX.Y.Z
    if (dest / "go.mod").exists():
        return dest
    partial = cache / f".{source.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(
        source, partial, ignore=shutil.ignore_patterns(*_NOT_GO), copy_function=shutil.copyfile
    )
    for folder, dirs, _ in os.walk(partial):  # module cache copies are read-only
        for name in dirs:
            (Path(folder) / name).chmod(0o755)
    partial.chmod(0o755)
    partial.rename(dest)
    return dest

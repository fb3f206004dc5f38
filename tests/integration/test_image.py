"""The images as shipped, run under podman: built by ``hack/image.sh`` (what ``make image``
runs; on a machine without a registry the base is made from Debian's packages), then started
the way a hardened pod starts them: read-only root filesystem, uid 65532, no network, and no
shell (every shell in the image is masked, so nothing can go through one).

Podman, runc and debootstrap are installed by the build script when missing; the first build
on a fresh machine takes minutes (base image + dependencies), later ones reuse the cached base
and layers.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PODMAN = ROOT / "hack" / "podman.sh"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

SHELLS = ("/usr/bin/dash", "/usr/bin/bash", "/bin/dash", "/bin/bash")


def podman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PODMAN), *args], capture_output=True, text=True, check=False, timeout=timeout
    )


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """Build (or reuse) both images; returns their tags."""
    done = subprocess.run(
        ["bash", str(ROOT / "hack" / "image.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=3300,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    server, agent = done.stdout.split()
    return {"server": server, "agent": agent}


def _shells(image: str) -> list[str]:
    """The shell binaries present in ``image`` (resolved, as mount targets)."""
    code = (
        "import json, os, sys\n"
        "found = {os.path.realpath(p) for p in sys.argv[1:] if os.path.exists(p)}\n"
        "print(json.dumps(sorted(found)))\n"
    )
    done = podman("run", "--rm", "--network", "none", "--entrypoint",
                  "/opt/modelfleet/bin/python", image, "-c", code, *SHELLS)  # fmt: skip
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout)
    return found


def run(image: str, *args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
    """``podman run`` as a hardened pod: read-only root, uid/gid 65532, no network, no shell."""
    masks = [a for shell in _shells(image) for a in ("--volume", f"/dev/null:{shell}:ro")]
    extra = ["--entrypoint", entrypoint] if entrypoint else []
    return podman("run", "--rm", "--read-only", "--user", "65532:65532", "--network", "none",
                  *masks, *extra, image, *args)  # fmt: skip


def test_server_image_lists_every_command(images: dict[str, str]) -> None:
    for args in ((), ("--help",)):  # the image's CMD is --help
        done = run(images["server"], *args)
        assert done.returncode == 0, done.stderr
        assert "usage: modelfleet" in done.stdout
        assert "operator" in done.stdout
        assert "fleet-api" in done.stdout
        # GitOps stays in the CLI: listed, with what it would need
        assert "release      (unavailable:" in done.stdout


@pytest.mark.parametrize("command", ["operator", "fleet-api", "fleet-ca", "gateway"])
def test_server_image_runs_its_commands(images: dict[str, str], command: str) -> None:
    done = run(images["server"], command, "--help")
    assert done.returncode == 0, done.stderr
    assert f"usage: modelfleet {command}" in done.stdout


def test_server_image_fails_in_one_line_without_a_cluster(images: dict[str, str]) -> None:
    done = run(images["server"], "fleet-api", "--namespace", "default")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "modelfleet fleet-api: no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) "
        "and not in a cluster"
    ]


def test_operator_imports_in_the_image_without_git(images: dict[str, str]) -> None:
    code = (
        "import shutil, sys\n"
        "import modelfleet.controller.handlers, modelfleet.controller.runner, modelfleet.fleet.app\n"
        "assert shutil.which('git') is None, 'git in the image'\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('git', 'gitdb'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    done = run(images["server"], "-c", code, entrypoint="/opt/modelfleet/bin/python")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_agent_image_runs_the_agent_alone(images: dict[str, str]) -> None:
    done = run(images["agent"], "--help")
    assert done.returncode == 0, done.stderr
    assert "--config" in done.stdout
    code = (
        "import importlib.util as u, sys\n"
        "present = [m for m in ('kopf', 'kubernetes', 'git', 'jsonschema') if u.find_spec(m)]\n"
        "assert not present, present\n"
        "import modelfleet.agent.runtime, modelfleet.agent.trustverifier\n"
        "print('ok')\n"
    )
    done = run(images["agent"], "-c", code, entrypoint="/opt/modelfleet/bin/python")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("which", ["server", "agent"])
def test_images_run_as_non_root_with_an_exec_form_entrypoint(
    images: dict[str, str], which: str
) -> None:
    done = podman("image", "inspect", images[which])
    assert done.returncode == 0, done.stderr
    (info,) = json.loads(done.stdout)
    config = info["Config"]
    assert config["User"] == "65532:65532"
    program = "modelfleet" if which == "server" else "modelfleet-agent"
    assert config["Entrypoint"] == [f"/opt/modelfleet/bin/{program}"]
    # without --user the image's own user applies: not root
    code = "import os; print(os.getuid(), os.getgid())"
    done = podman("run", "--rm", "--read-only", "--network", "none", "--entrypoint",
                  "/opt/modelfleet/bin/python", images[which], "-c", code)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["65532", "65532"]


def test_the_shell_mask_really_leaves_no_shell(images: dict[str, str]) -> None:
    # the control for the runs above: under the same masks /bin/sh cannot start
    assert _shells(images["server"]), "the base has a shell to mask"
    done = run(images["server"], "-c", "echo ran", entrypoint="/bin/sh")
    assert done.returncode != 0
    assert "ran" not in done.stdout

"""``modelfleet dev-cluster up|down|status``: one control plane in the background per user.

Its files live in ``~/.cache/modelfleet/dev-cluster`` (or ``$MODELFLEET_CACHE``); ``state.json``
there records the process ids and ports so that ``down`` can stop it from another shell.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from modelfleet.devcluster.assets import cache_root, find_assets
from modelfleet.devcluster.controlplane import ControlPlane
from modelfleet.errors import ConfigError


@dataclass(frozen=True)
class Running:
    workdir: Path
    kubeconfig: Path
    server: str
    pids: tuple[int, ...]

    def alive(self) -> bool:
        return all(_alive(p) for p in self.pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def state_dir() -> Path:
    return cache_root() / "dev-cluster"


def current() -> Running | None:
    state = state_dir() / "state.json"
    if not state.exists():
        return None
    data = json.loads(state.read_text())
    return Running(
        workdir=Path(data["workdir"]),
        kubeconfig=Path(data["kubeconfig"]),
        server=data["server"],
        pids=tuple(data["pids"]),
    )


def up() -> Running:
    """Start the dev cluster unless one is already running; return where it is."""
    running = current()
    if running is not None and running.alive():
        return running
    if running is not None:
        down()
    workdir = state_dir()
    if workdir.exists():
        shutil.rmtree(workdir)
    cp = ControlPlane(workdir=workdir, assets=find_assets(build=True), keep_workdir=True)
    cp.start(detach=True)
    assert cp.etcd is not None and cp.apiserver is not None
    running = Running(
        workdir=workdir,
        kubeconfig=cp.kubeconfig,
        server=cp.server,
        pids=(cp.apiserver.pid, cp.etcd.pid),
    )
    (workdir / "state.json").write_text(
        json.dumps(
            {
                "workdir": str(workdir),
                "kubeconfig": str(cp.kubeconfig),
                "server": cp.server,
                "pids": list(running.pids),
            }
        )
    )
    return running


def down() -> bool:
    """Stop the dev cluster and remove its files; False when none was running."""
    running = current()
    if running is None:
        if state_dir().exists():
            shutil.rmtree(state_dir(), ignore_errors=True)
        return False
    for pid in running.pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in running.pids):
        time.sleep(0.2)
    for pid in running.pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    if running.workdir != state_dir():
        raise ConfigError(f"unexpected dev-cluster folder {running.workdir}; not removing it")
    shutil.rmtree(running.workdir, ignore_errors=True)
    return True

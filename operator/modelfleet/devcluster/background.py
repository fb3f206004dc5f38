"""``modelfleet dev-cluster up|down|status``: a control plane in the background, one per state dir.

The state dir (``--state-dir``; default ``~/.cache/modelfleet/dev-cluster``, or
``$MODELFLEET_CACHE/dev-cluster``) holds the cluster's data, certificates, kubeconfig and logs,
and ``state.json``, which records the process ids and the server so that ``down`` can stop it
from another shell. Several state dirs give several isolated clusters; the binaries stay in
their own cache (:mod:`modelfleet.devcluster.assets`) whatever the state dir, so a new state dir
never rebuilds the control plane.

The folder is the cluster's own: ``up`` refuses a folder that holds anything but a former dev
cluster, and ``down`` removes it only when ``state.json`` is there.

``down`` stops kube-apiserver first and etcd after it: an API server whose etcd is gone spends
its whole graceful-shutdown budget retrying storage, while one stopped first closes its watches
and exits in about a second.
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

STATE_FILE = "state.json"
#: How long each process gets after SIGTERM before SIGKILL.
STOP_GRACE = 10.0


@dataclass(frozen=True)
class Running:
    workdir: Path
    kubeconfig: Path
    server: str
    #: kube-apiserver first, then etcd: the order ``down`` stops them in.
    pids: tuple[int, ...]

    def alive(self) -> bool:
        return all(_alive(p) for p in self.pids)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, not yet reaped) does not."""
    if not Path("/proc/self").exists():  # no procfs: ask the kernel
        with contextlib.suppress(PermissionError):
            os.kill(pid, 0)  # ProcessLookupError: gone
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def default_state_dir() -> Path:
    return cache_root() / "dev-cluster"


def state_dir(folder: Path | None = None) -> Path:
    """``folder`` made absolute, or the default state dir."""
    return (folder.expanduser() if folder is not None else default_state_dir()).absolute()


def current(folder: Path | None = None) -> Running | None:
    """The cluster recorded in the state dir (running or not), or ``None``."""
    state = state_dir(folder) / STATE_FILE
    try:
        data = json.loads(state.read_text())
        return Running(
            workdir=Path(data["workdir"]),
            kubeconfig=Path(data["kubeconfig"]),
            server=data["server"],
            pids=tuple(int(p) for p in data["pids"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{state}: not a dev-cluster state file ({exc})") from None


def _claim(workdir: Path) -> None:
    """Make ``workdir`` empty for a new cluster, refusing to clear a folder that is not ours."""
    if not workdir.exists():
        return
    if not workdir.is_dir():
        raise ConfigError(f"--state-dir {workdir}: not a folder")
    ours = workdir == default_state_dir() or any(
        (workdir / mark).exists() for mark in (STATE_FILE, "pki/ca.crt")
    )
    if any(workdir.iterdir()) and not ours:
        raise ConfigError(
            f"--state-dir {workdir}: the folder is not empty and holds no dev cluster; "
            "give an empty or new folder"
        )
    shutil.rmtree(workdir)


def up(folder: Path | None = None) -> Running:
    """Start the dev cluster unless one is already running there; return where it is."""
    workdir = state_dir(folder)
    running = current(workdir)
    if running is not None and running.alive():
        return running
    if running is not None:
        down(workdir)
    _claim(workdir)
    cp = ControlPlane(workdir=workdir, assets=find_assets(build=True), keep_workdir=True)
    cp.start(detach=True)
    assert cp.etcd is not None and cp.apiserver is not None
    running = Running(
        workdir=workdir,
        kubeconfig=cp.kubeconfig,
        server=cp.server,
        pids=(cp.apiserver.pid, cp.etcd.pid),
    )
    state = {
        "workdir": str(workdir),
        "kubeconfig": str(cp.kubeconfig),
        "server": cp.server,
        "pids": list(running.pids),
    }
    (workdir / STATE_FILE).write_text(json.dumps(state))
    return running


def _stop(pid: int) -> None:
    """SIGTERM the process group of ``pid``; SIGKILL it after :data:`STOP_GRACE`."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def down(folder: Path | None = None) -> bool:
    """Stop the dev cluster and remove its files; False when none was running."""
    workdir = state_dir(folder)
    running = current(workdir)
    if running is None:
        return False
    if running.workdir != workdir:
        raise ConfigError(f"{workdir / STATE_FILE} names another folder ({running.workdir})")
    for pid in running.pids:  # the API server, then etcd
        _stop(pid)
    shutil.rmtree(workdir, ignore_errors=True)
    return True

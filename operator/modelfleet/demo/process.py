"""One long-running child process of the stack: start it in a process group of its own, check
that it still runs, stop it (SIGTERM to the group, SIGKILL after a grace period); and waiting for
a condition while watching such processes.

Unless ``tie_to_parent=False``, a child also gets ``PR_SET_PDEATHSIG``: if the process that
started it is killed outright, the child receives SIGTERM too. :func:`stop_recorded` stops the
process groups a kept stack recorded in ``stack.json``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelfleet.errors import ModelfleetError

STOP_GRACE = 15.0
PR_SET_PDEATHSIG = 1


class StackError(ModelfleetError):
    """A process of the stack failed to start, exited early or could not be reached."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Service:
    """One long-running ``python -m modelfleet …`` (or any argv) with its log file."""

    name: str
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str]
    cwd: Path
    tie_to_parent: bool = True
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(self.argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(self.env),
                cwd=self.cwd,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_die_with_parent if self.tie_to_parent else None,  # noqa: PLW1509
            )

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise :class:`StackError` with the end of the log if the process has exited."""
        if self.proc is None:
            raise StackError(f"{self.name} was never started")
        code = self.proc.poll()
        if code is not None:
            raise StackError(
                f"{self.name} exited with code {code}; end of {self.log}: {self.tail(8)}"
            )

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM the process group, SIGKILL after ``grace`` seconds; the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        # Anything the child left behind in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode

    def pause(self) -> None:
        """SIGSTOP the group: it keeps its state but neither polls nor reports (a gateway that
        lost its network, as its peers see it)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the group after :meth:`pause`."""
        self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole group at once (chaos and restart tests)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    services: Sequence[Service] = (),
    interval: float = 0.2,
) -> Any:
    """Poll ``predicate`` until truthy (returned), checking that ``services`` still run."""
    deadline = time.monotonic() + timeout
    while True:
        for svc in services:
            svc.check()
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def run_quietly(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to the end with its output captured as text; a failure exit is the
    caller's to report (``returncode``), not an exception."""
    run = subprocess.run
    return run(list(argv), cwd=cwd, env=dict(env), capture_output=True, text=True,
               timeout=timeout, check=False)  # fmt: skip


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop_recorded(workdir: Path, grace: float = STOP_GRACE) -> int:
    """Stop the process groups a kept stack recorded in ``workdir/stack.json``; how many."""
    state_file = workdir / "stack.json"
    if not state_file.exists():
        raise StackError(f"no stack.json in {workdir}: nothing recorded to stop")
    groups = [int(p) for p in json.loads(state_file.read_text()).get("processGroups", [])]
    alive = []
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
            alive.append(pgid)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if _group_alive(p)]
    for pgid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    state_file.unlink()
    return len(groups)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

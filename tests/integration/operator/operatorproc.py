"""``modelfleet operator`` as a real subprocess of the operator's integration tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from modelfleet.controller.probes import logged_probes
from modelfleet.devcluster import ControlPlane, free_port

from .cluster import ROOT, wait_for


@dataclass
class OperatorProcess:
    """``modelfleet operator`` as a subprocess (a new one after each ``kill``)."""

    cp: ControlPlane
    namespace: str
    log_dir: Path
    interval: float = 1.0
    report_interval: float = 1.0
    extra: tuple[str, ...] = ()
    liveness: str = "http://127.0.0.1:0/healthz"
    """Where the probes serve: by default a port of the system's choosing, read from the log."""
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    starts: int = 0

    def start(self) -> None:
        """Start the operator and wait until it is live. Its probes take a port of the
        system's choosing (``--liveness`` on port 0; the port is read from its log), so no
        other process can hold it or answer for it; a metrics port taken between choosing it
        and binding it is chosen again."""
        for _ in range(3):
            try:
                self._start_once()
                return
            except _PortTaken:
                continue
        raise AssertionError(f"operator: metrics port taken three times:\n{self.logs()}")

    def _start_once(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.metrics_port = free_port()
        self.starts += 1
        log_path = self.log_dir / f"operator-{self.starts}.log"
        cmd = [
            sys.executable, "-m", "modelfleet", "-v", "operator",
            "--namespace", self.namespace,
            "--interval", str(self.interval),
            "--report-interval", str(self.report_interval),
            "--kubeconfig", str(self.cp.kubeconfig),
            "--metrics-port", str(self.metrics_port), "--metrics-host", "127.0.0.1",
            "--liveness", self.liveness,
            *self.extra,
        ]  # fmt: skip
        env = dict(self.cp.env)
        env["PYTHONPATH"] = str(ROOT / "operator")
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )
        proc = self.proc

        def live() -> bool:
            text = log_path.read_text(errors="replace")
            if proc.poll() is not None:
                if "Address already in use" in text and "--liveness" not in text:
                    raise _PortTaken
                raise AssertionError(f"operator exited {proc.returncode}:\n{self.logs()}")
            return probes_live(text)

        wait_for(live, timeout=30, what="operator liveness")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log"))
        )

    def writes(self) -> dict[str, int]:
        """API writes of the running process, by kind (from its metrics port)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            text = r.read().decode()
        out: dict[str, int] = {}
        for line in text.splitlines():
            if line.startswith("modelfleet_operator_api_writes_total{"):
                kind = line.split('kind="', 1)[1].split('"', 1)[0]
                out[kind] = int(float(line.rsplit(" ", 1)[1]))
        return out


class _PortTaken(Exception):
    """The operator exited because a port it was given was taken meanwhile."""


def probes_live(log: str) -> bool:
    """Whether the operator whose log this is answers ``/healthz`` on the port it logged last."""
    url = logged_probes(log)
    if url is None:
        return False
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1):
            return True
    except OSError:
        return False


def artifact_sources(folder: Path) -> tuple[str, ...]:
    """The artifact sources the operator tests use: files under ``folder``, HTTP on loopback."""
    return (
        "--allow-file-root", str(folder),
        "--allow-scheme", "http",
        "--allow-host", "127.0.0.1",
        "--allow-host", "localhost",
    )  # fmt: skip

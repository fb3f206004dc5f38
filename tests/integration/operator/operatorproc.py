"""``modelfleet operator`` as a real subprocess of the operator's integration tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    starts: int = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.metrics_port = free_port()
        liveness = free_port()
        self.starts += 1
        log = (self.log_dir / f"operator-{self.starts}.log").open("wb")
        cmd = [
            sys.executable, "-m", "modelfleet", "-v", "operator",
            "--namespace", self.namespace,
            "--interval", str(self.interval),
            "--report-interval", str(self.report_interval),
            "--kubeconfig", str(self.cp.kubeconfig),
            "--metrics-port", str(self.metrics_port), "--metrics-host", "127.0.0.1",
            "--liveness", f"http://127.0.0.1:{liveness}/healthz",
            *self.extra,
        ]  # fmt: skip
        env = dict(self.cp.env)
        env["PYTHONPATH"] = str(ROOT / "operator")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        log.close()

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=1):
                    return True
            except OSError:
                return False

        wait_for(ready, timeout=30, what="operator liveness")

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


def artifact_sources(folder: Path) -> tuple[str, ...]:
    """The artifact sources the operator tests use: files under ``folder``, HTTP on loopback."""
    return (
        "--allow-file-root", str(folder),
        "--allow-scheme", "http",
        "--allow-host", "127.0.0.1",
        "--allow-host", "localhost",
    )  # fmt: skip

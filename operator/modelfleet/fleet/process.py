"""Starting ``modelfleet fleet-api`` as a child process: for tests, the demo, chaos runs, benches.

:func:`start_fleet_api` runs the real command (``python -m modelfleet fleet-api``) on free
loopback ports, waits until ``/healthz`` says it is serving, and returns a handle that can stop
it gracefully (SIGTERM) or kill it (SIGKILL) and restart it on the same ports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modelfleet.errors import ModelfleetError


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FleetAPIStartError(ModelfleetError):
    """The fleet API process exited or did not become ready; the message has its log tail."""


@dataclass
class FleetAPIProcess:
    """A running ``modelfleet fleet-api``; ``url`` is its HTTPS base URL."""

    args: list[str]
    env: dict[str, str]
    port: int
    metrics_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self, timeout: float = 60.0) -> FleetAPIProcess:
        """Start (again) and wait until it serves."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise FleetAPIStartError(
                    f"fleet-api exited with {self.proc.returncode}: {self.tail()}"
                )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.metrics_url}/healthz", timeout=2) as resp,
            ):
                if resp.status == 200:
                    return self
            time.sleep(0.1)
        self.kill()
        raise FleetAPIStartError(f"fleet-api not ready after {timeout:.0f}s: {self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _signal(self, sig: int, wait: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        self._signal(signal.SIGTERM, 15.0)

    def kill(self) -> None:
        """SIGKILL at once (chaos)."""
        self._signal(signal.SIGKILL, 5.0)

    def __enter__(self) -> FleetAPIProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_fleet_api(
    *,
    kubeconfig: Path,
    namespace: str,
    log_path: Path,
    port: int | None = None,
    metrics_port: int | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> FleetAPIProcess:
    """Start ``modelfleet fleet-api -n NAMESPACE`` on 127.0.0.1 and wait until it serves.

    TLS material comes from the ``modelfleet-fleet-api-tls`` Secret of ``namespace`` unless
    ``extra_args`` name files (``--tls-cert``, ``--tls-key``, ``--client-ca``)."""
    port = port or free_port()
    metrics_port = metrics_port or free_port()
    args = [
        sys.executable, "-m", "modelfleet", "-v", "fleet-api",
        "--kubeconfig", str(kubeconfig), "--namespace", namespace,
        "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port),
        *extra_args,
    ]  # fmt: skip
    full_env = dict(os.environ if env is None else env)
    proc = FleetAPIProcess(args, full_env, port, metrics_port, Path(log_path))
    return proc.start(timeout)

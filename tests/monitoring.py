"""The real Prometheus and promtool (Debian's ``prometheus`` package, installed by
``hack/ensure-prometheus.sh``) for the monitoring tests, and the repository's monitoring files.

:class:`Prometheus` runs ``/usr/bin/prometheus`` with its own configuration, a temporary storage
folder and a free loopback port (never the packaged service), scraping every second, and
answers PromQL through the HTTP API (``/api/v1/query``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from modelfleet.devcluster import free_port

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "manifests" / "monitoring"
RULE = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"


def tool(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``; a clear failure when it is missing."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} not found: run `bash hack/ensure-prometheus.sh` (root)")
    return path


def write_rules(folder: Path) -> Path:
    """The rule groups of the PrometheusRule, as a plain Prometheus rules file."""
    doc = yaml.safe_load(RULE.read_text())
    assert doc["kind"] == "PrometheusRule"
    path = folder / "modelfleet-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}, sort_keys=False))
    return path


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every panel target of the Grafana dashboard."""
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            out.append((str(panel["title"]), str(target["expr"])))
    return out


class Prometheus:
    """``prometheus`` scraping ``targets`` ({job: "host:port"}) every second, with ``rules``."""

    def __init__(self, workdir: Path, targets: dict[str, str], rules: Path | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
        }
        if rules is not None:
            config["rule_files"] = [str(rules)]
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    tool("prometheus"),
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait(self._ready, 60, "prometheus to be ready")
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def _ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def wait(self, check: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.5)

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; the ``data`` of a successful answer."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                doc = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{path} {params}: {exc.code} {exc.read()[:500]!r}") from exc
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (``[{"metric": {...}, "value": ...}]``)."""
        data = self.api("query", query=expr)
        assert data["resultType"] in ("vector", "scalar"), data
        result: list[dict[str, Any]] = (
            data["result"] if data["resultType"] == "vector" else [{"value": data["result"]}]
        )
        return result

    def labels(self, expr: str, label: str) -> set[str]:
        """The values of ``label`` among the series ``expr`` returns now."""
        return {str(s["metric"].get(label)) for s in self.query(expr)}

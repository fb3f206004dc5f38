"""The gateway agent's configuration: the ``agent.yaml`` format, its loader and its writer.

This module owns the contract between enrollment (``modelfleet gateway enroll NAME``, which
writes a config bundle) and the agent (``modelfleet agent --config FILE``, which reads it).

A bundle is a folder::

    agent.yaml          this format
    client.crt          the gateway's client certificate (its identity; PEM)
    client.key          its private key (PEM, mode 0600)
    ca.crt              the fleet CA, to verify the fleet API's server certificate
    trust-policy.yaml   the TrustPolicy the agent verifies models against (its own copy)

``agent.yaml``::

    apiVersion: modelfleet.dev/v1alpha1
    kind: AgentConfig
    gateway: store-0042                  # EdgeGateway name (for logs; identity is the cert)
    namespace: retail                    # optional, for logs
    fleetURL: https://fleet.example.com:8443
    tls: {cert: client.crt, key: client.key, ca: ca.crt}
    dataDir: /var/lib/modelfleet         # slots, active links, state.json
    trustPolicy: trust-policy.yaml       # a TrustPolicy manifest or its bare spec
    pollInterval: 30s                    # default poll period; the server's pollAfterSeconds wins
    reportInterval: 60s                  # health report period (state changes are sent at once)
    maxArtifactBytes: 17179869184        # downloads larger than this are refused (default 16 GiB)
    healthCheck:                         # run after each activation; failure -> RolledBack
      command: ["/usr/local/bin/check-model", "{model}", "{path}"]   # exit 0 = healthy
      # or: httpURL: http://127.0.0.1:8080/v2/models/{model}/ready   # 2xx = healthy
      timeout: 10s
      attempts: 3                        # tries before declaring failure
      interval: 2s                       # pause between tries
    metrics:                             # optional: the local inference server's Prometheus page
      url: http://127.0.0.1:8080/metrics
      requestsMetric: inference_requests_total        # counter
      errorsMetric: inference_errors_total            # counter
      latencyHistogram: inference_request_duration_seconds   # histogram, in seconds
      driftMetric: inference_drift_score              # optional gauge
      modelLabel: model                  # label naming the model on those series
      windowSeconds: 60                  # aggregation window reported as health

Rules: relative paths are resolved against the folder holding ``agent.yaml``; durations are a
number of seconds or a string with a unit (``500ms``, ``30s``, ``5m``, ``1h``); ``fleetURL``
must be ``https://`` (mTLS); placeholders ``{model}``, ``{version}``, ``{digest}`` and ``{path}``
(the active model folder) are substituted in ``healthCheck.command`` items and ``httpURL``.
Unknown keys are errors, so a typo never silently disables a health check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import yaml

from modelfleet.certs import TLSFiles
from modelfleet.errors import ConfigError

API_VERSION = "modelfleet.dev/v1alpha1"
KIND = "AgentConfig"
DEFAULT_MAX_ARTIFACT_BYTES = 16 * 1024**3
PLACEHOLDERS = frozenset({"model", "version", "digest", "path"})

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class AgentConfigError(ConfigError):
    """``agent.yaml`` is missing, unreadable or invalid; the message names the file and field."""


@dataclass(frozen=True)
class HealthCheckConfig:
    """How to decide that a freshly activated model works: a command or an HTTP probe."""

    command: tuple[str, ...] | None = None
    http_url: str | None = None
    timeout: float = 10.0
    attempts: int = 1
    interval: float = 1.0


@dataclass(frozen=True)
class MetricsConfig:
    """Where and how to read the local inference server's Prometheus metrics."""

    url: str
    requests_metric: str
    errors_metric: str
    latency_histogram: str
    drift_metric: str | None = None
    model_label: str = "model"
    window_seconds: float = 60.0


@dataclass(frozen=True)
class AgentConfig:
    """Everything one gateway agent needs; built by :func:`load_agent_config`."""

    gateway: str
    fleet_url: str
    tls: TLSFiles  # client identity and server trust for mTLS to the fleet API (absolute)
    data_dir: Path
    trust_policy: Path
    namespace: str = ""
    poll_interval: float = 30.0
    report_interval: float = 60.0
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    health_check: HealthCheckConfig | None = None
    metrics: MetricsConfig | None = None
    source: Path | None = field(default=None, compare=False)

    def to_mapping(self, relative_to: Path | None = None) -> dict[str, Any]:
        """The ``agent.yaml`` mapping; paths under ``relative_to`` are written relative to it."""

        def rel(path: Path) -> str:
            if relative_to is not None:
                try:
                    return str(path.relative_to(relative_to))
                except ValueError:
                    pass
            return str(path)

        out: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "gateway": self.gateway,
        }
        if self.namespace:
            out["namespace"] = self.namespace
        out |= {
            "fleetURL": self.fleet_url,
            "tls": {"cert": rel(self.tls.cert), "key": rel(self.tls.key), "ca": rel(self.tls.ca)},
            "dataDir": rel(self.data_dir),
            "trustPolicy": rel(self.trust_policy),
            "pollInterval": _fmt_duration(self.poll_interval),
            "reportInterval": _fmt_duration(self.report_interval),
            "maxArtifactBytes": self.max_artifact_bytes,
        }
        hc = self.health_check
        if hc is not None:
            hcm: dict[str, Any] = {}
            if hc.command is not None:
                hcm["command"] = list(hc.command)
            if hc.http_url is not None:
                hcm["httpURL"] = hc.http_url
            hcm |= {
                "timeout": _fmt_duration(hc.timeout),
                "attempts": hc.attempts,
                "interval": _fmt_duration(hc.interval),
            }
            out["healthCheck"] = hcm
        m = self.metrics
        if m is not None:
            mm: dict[str, Any] = {
                "url": m.url,
                "requestsMetric": m.requests_metric,
                "errorsMetric": m.errors_metric,
                "latencyHistogram": m.latency_histogram,
            }
            if m.drift_metric is not None:
                mm["driftMetric"] = m.drift_metric
            window: float | int = (
                int(m.window_seconds) if m.window_seconds.is_integer() else m.window_seconds
            )
            mm |= {"modelLabel": m.model_label, "windowSeconds": window}
            out["metrics"] = mm
        return out


def write_agent_config(config: AgentConfig, path: Path) -> None:
    """Write ``config`` as ``agent.yaml`` at ``path``, paths relative to its folder."""
    path = Path(path)
    text = yaml.safe_dump(
        config.to_mapping(relative_to=path.parent.resolve()), sort_keys=False, width=100
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def load_agent_config(path: Path | str) -> AgentConfig:
    """Read and validate ``agent.yaml``; raises :class:`AgentConfigError` naming the bad field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgentConfigError(f"cannot read agent config {path}: {exc.strerror or exc}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgentConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise AgentConfigError(f"{path}: expected a mapping (kind: {KIND}), got {_tn(doc)}")
    return parse_agent_config(doc, base_dir=path.resolve().parent, source=path)


def parse_agent_config(
    doc: Mapping[str, Any], *, base_dir: Path, source: Path | None = None
) -> AgentConfig:
    """Validate an already-parsed ``agent.yaml`` mapping; relative paths resolve to ``base_dir``."""
    where = str(source) if source is not None else "agent config"
    r = _Reader(doc, where, "")
    r.allow(
        "apiVersion", "kind", "gateway", "namespace", "fleetURL", "tls", "dataDir", "trustPolicy",
        "pollInterval", "reportInterval", "maxArtifactBytes", "healthCheck", "metrics",
    )  # fmt: skip
    api_version = r.opt_str("apiVersion")
    if api_version is not None and api_version != API_VERSION:
        r.fail("apiVersion", f"must be {API_VERSION!r}, got {api_version!r}")
    kind = r.opt_str("kind")
    if kind is not None and kind != KIND:
        r.fail("kind", f"must be {KIND!r}, got {kind!r}")
    gateway = r.req_str("gateway")
    if not _NAME.match(gateway):
        r.fail("gateway", f"{gateway!r} is not a valid Kubernetes object name")
    fleet_url = r.req_str("fleetURL")
    parts = urlsplit(fleet_url)
    if parts.scheme != "https" or not parts.hostname:
        r.fail(
            "fleetURL", f"must be an https:// URL (the fleet API requires mTLS), got {fleet_url!r}"
        )
    tls_r = r.sub("tls")
    tls_r.allow("cert", "key", "ca")
    tls = TLSFiles(
        cert=_path(base_dir, tls_r.req_str("cert")),
        key=_path(base_dir, tls_r.req_str("key")),
        ca=_path(base_dir, tls_r.req_str("ca")),
    )
    poll = r.opt_duration("pollInterval", 30.0)
    report = r.opt_duration("reportInterval", 60.0)
    max_bytes = r.opt_int("maxArtifactBytes", DEFAULT_MAX_ARTIFACT_BYTES)
    if max_bytes <= 0:
        r.fail("maxArtifactBytes", "must be positive")
    return AgentConfig(
        gateway=gateway,
        namespace=r.opt_str("namespace") or "",
        fleet_url=fleet_url.rstrip("/"),
        tls=tls,
        data_dir=_path(base_dir, r.req_str("dataDir")),
        trust_policy=_path(base_dir, r.req_str("trustPolicy")),
        poll_interval=poll,
        report_interval=report,
        max_artifact_bytes=max_bytes,
        health_check=_health_check(r) if "healthCheck" in doc else None,
        metrics=_metrics(r) if "metrics" in doc else None,
        source=source,
    )


def _health_check(parent: _Reader) -> HealthCheckConfig:
    r = parent.sub("healthCheck")
    r.allow("command", "httpURL", "timeout", "attempts", "interval")
    command: tuple[str, ...] | None = None
    if "command" in r.doc:
        raw = r.doc["command"]
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
            r.fail("command", "must be a non-empty list of strings (argv; no shell)")
        command = tuple(raw)
        for item in command:
            _check_placeholders(r, "command", item)
    http_url = r.opt_str("httpURL")
    if http_url is not None:
        if urlsplit(http_url).scheme not in ("http", "https"):
            r.fail("httpURL", f"must be an http:// or https:// URL, got {http_url!r}")
        _check_placeholders(r, "httpURL", http_url)
    if (command is None) == (http_url is None):
        r.fail("", "needs exactly one of command or httpURL")
    attempts = r.opt_int("attempts", 1)
    if attempts < 1:
        r.fail("attempts", "must be at least 1")
    return HealthCheckConfig(
        command=command,
        http_url=http_url,
        timeout=r.opt_duration("timeout", 10.0),
        attempts=attempts,
        interval=r.opt_duration("interval", 1.0),
    )


def _metrics(parent: _Reader) -> MetricsConfig:
    r = parent.sub("metrics")
    r.allow(
        "url", "requestsMetric", "errorsMetric", "latencyHistogram", "driftMetric",
        "modelLabel", "windowSeconds",
    )  # fmt: skip
    url = r.req_str("url")
    if urlsplit(url).scheme not in ("http", "https"):
        r.fail("url", f"must be an http:// or https:// URL, got {url!r}")
    window = r.opt_duration("windowSeconds", 60.0)
    return MetricsConfig(
        url=url,
        requests_metric=r.req_str("requestsMetric"),
        errors_metric=r.req_str("errorsMetric"),
        latency_histogram=r.req_str("latencyHistogram"),
        drift_metric=r.opt_str("driftMetric"),
        model_label=r.opt_str("modelLabel") or "model",
        window_seconds=window,
    )


def parse_duration(value: object) -> float:
    """Seconds from ``30``, ``2.5``, ``"500ms"``, ``"30s"``, ``"5m"`` or ``"1h"``."""
    if isinstance(value, bool):
        raise ValueError("a duration, not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration (e.g. 30, '500ms', '30s', '5m', '1h')")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


def _fmt_duration(seconds: float) -> str:
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def _path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _check_placeholders(r: _Reader, key: str, text: str) -> None:
    for name in re.findall(r"\{([^{}]*)\}", text):
        if name not in PLACEHOLDERS:
            r.fail(key, f"unknown placeholder {{{name}}}; known: {sorted(PLACEHOLDERS)}")


def _tn(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


class _Reader:
    """Typed access to one mapping of the config with errors naming file and field."""

    def __init__(self, doc: Mapping[str, Any], where: str, prefix: str) -> None:
        self.doc = doc
        self.where = where
        self.prefix = prefix

    def fail(self, key: str, message: str) -> NoReturn:
        name = ".".join(x for x in (self.prefix, key) if x) or "(top level)"
        raise AgentConfigError(f"{self.where}: {name}: {message}")

    def allow(self, *keys: str) -> None:
        unknown = sorted(str(k) for k in self.doc if k not in keys)
        if unknown:
            self.fail(unknown[0], f"unknown field; expected one of {', '.join(keys)}")

    def sub(self, key: str) -> _Reader:
        value = self.doc.get(key)
        if not isinstance(value, Mapping):
            self.fail(key, f"must be a mapping, got {_tn(value)}")
        return _Reader(value, self.where, ".".join(x for x in (self.prefix, key) if x))

    def req_str(self, key: str) -> str:
        value = self.doc.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"required, a non-empty string; got {_tn(value)}")
        return value.strip()

    def opt_str(self, key: str) -> str | None:
        if key not in self.doc or self.doc[key] is None:
            return None
        return self.req_str(key)

    def opt_int(self, key: str, default: int) -> int:
        value = self.doc.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be an integer, got {_tn(value)}")
        return value

    def opt_duration(self, key: str, default: float) -> float:
        if key not in self.doc:
            return default
        try:
            return parse_duration(self.doc[key])
        except ValueError as exc:
            self.fail(key, str(exc))

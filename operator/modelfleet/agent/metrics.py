"""Prometheus metrics of the agent process (one gateway, or the N gateways of ``simulate``).

Served with ``--metrics-port`` (``modelfleet agent`` and ``modelfleet simulate``) from the
default registry. Series are per process, never per gateway: with thousands of simulated
gateways in one process the label sets stay bounded (stage, result, state).

* ``modelfleet_agent_stage_seconds{stage, result}``: one download (all files of a version),
  one verification, one activation (switch + health check), by outcome (ok, failed);
* ``modelfleet_agent_models{state}``: the models of this process's gateways by reported state
  (Downloading, Verifying, Active, Failed, RolledBack...), counted at scrape time;
* ``modelfleet_agent_slot_switches_total{reason}``: active-slot changes (activate, rollback).
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

STAGE_SECONDS = Histogram(
    "modelfleet_agent_stage_seconds",
    "Time of one install stage (download, verify, activate) of one model version, by result.",
    ["stage", "result"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
SLOT_SWITCHES = Counter(
    "modelfleet_agent_slot_switches",
    "Active-slot changes, by reason (activate: a new version; rollback: back to the previous).",
    ["reason"],
)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage ``name``; ``result`` is ``failed`` when it raises."""
    started = time.perf_counter()
    result = "failed"
    try:
        yield
        result = "ok"
    finally:
        STAGE_SECONDS.labels(name, result).observe(time.perf_counter() - started)


def observe(name: str, started: float, *, ok: bool) -> None:
    """Record stage ``name`` begun at ``started`` (``time.perf_counter()``)."""
    STAGE_SECONDS.labels(name, "ok" if ok else "failed").observe(time.perf_counter() - started)


class ModelStates(Collector):
    """The reported state of every (gateway, model) of this process, counted per state."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], str] = {}

    def set(self, gateway: str, model: str, state: str) -> None:
        self._states[(gateway, model)] = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "modelfleet_agent_models",
            "Models of this process's gateways, by reported state.",
            labels=["state"],
        )
        for state, n in sorted(Tally(self._states.values()).items()):
            family.add_metric([state], n)
        yield family


MODEL_STATES = ModelStates()
REGISTRY.register(MODEL_STATES)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` on ``host:port`` from a background thread."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host)

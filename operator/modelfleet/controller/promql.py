"""Query gates: the operator asks Prometheus (``--prometheus-url``) what each query gate
measures, and hands the figures to ``decide`` as data (:class:`~modelfleet.core.QuerySample`).

For a gate with ``for: F`` the two figures are ``max(min_over_time((Q)[F:]))`` (the highest
value some series held throughout the window) and ``min(max_over_time((Q)[F:]))`` (the lowest
value some series held throughout); without ``for``, ``max(Q)`` and ``min(Q)``. An empty
answer, a NaN, an error or an unreachable Prometheus is *no data* (None): core judges it
Inconclusive, never a pass.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from modelfleet.core.types import QueryGate, QuerySample

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
MAX_ANSWER_BYTES = 1024 * 1024


def _range(gate: QueryGate) -> str:
    ms = int(gate.for_.total_seconds() * 1000)
    return f"{ms}ms"


def expressions(gate: QueryGate) -> tuple[str, str]:
    """The (high, low) PromQL the controller evaluates for ``gate``."""
    if gate.for_.total_seconds() <= 0:
        return f"max(({gate.query}))", f"min(({gate.query}))"
    window = _range(gate)
    return (
        f"max(min_over_time(({gate.query})[{window}:]))",
        f"min(max_over_time(({gate.query})[{window}:]))",
    )


class PrometheusQueries:
    """Evaluates query gates against one Prometheus HTTP API (``/api/v1/query``)."""

    def __init__(self, url: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout

    async def _scalar(self, session: aiohttp.ClientSession, expr: str) -> float | None:
        async with session.get(self.url + "/api/v1/query", params={"query": expr}) as r:
            body = bytearray()
            async for chunk in r.content.iter_any():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise ValueError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
            try:
                doc: Any = json.loads(body)
            except RecursionError:
                raise ValueError("answer nested too deeply") from None
        if not isinstance(doc, Mapping) or doc.get("status") != "success":
            error = doc.get("error") if isinstance(doc, Mapping) else None
            raise ValueError(f"HTTP {r.status}: {error or 'not a Prometheus answer'}")
        result = (doc.get("data") or {}).get("result")
        if not isinstance(result, list) or not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    async def _sample(
        self, session: aiohttp.ClientSession, gate: QueryGate, where: str
    ) -> QuerySample | None:
        """The figures of ``gate`` now; None when there is no data (logged when an error)."""
        high_expr, low_expr = expressions(gate)
        try:
            high, low = await asyncio.gather(
                self._scalar(session, high_expr), self._scalar(session, low_expr)
            )
        except (aiohttp.ClientError, TimeoutError, ValueError, TypeError, LookupError) as exc:
            log.warning("%s: query gate %s: no data (%s)", where, gate.name, exc)
            return None
        if high is None or low is None:
            return None
        return QuerySample(high=high, low=low)

    async def evaluate(
        self, gates: Sequence[QueryGate], where: str
    ) -> dict[str, QuerySample | None]:
        """Gate name → figures, for every gate (queried concurrently)."""
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            samples = await asyncio.gather(*(self._sample(session, g, where) for g in gates))
        return {g.name: s for g, s in zip(gates, samples, strict=True)}

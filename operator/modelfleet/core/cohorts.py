"""Cohort membership: which step of a release first tells a gateway the ``target``.

A gateway is in a ``percent`` step when
``int(sha256((salt + "/" + name).encode()).hexdigest()[:8], 16) % 10000 < percent * 100``;
a ``selector`` step adds the gateways its label selector matches. Steps are cumulative: a gateway
that joins at step *i* is in every step after *i*. Membership is computed, never stored: advancing
a step is one status write whatever the fleet size.

The salt defaults to ``namespace/model`` so the same gateways are the canaries of every release of
a model. Buckets are cached per ``(salt, name)``, so evaluating a 10,000-gateway fleet every few
seconds hashes each name once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from modelfleet.core.gateway import Gateway
from modelfleet.core.selectors import LabelSelector
from modelfleet.core.types import Release, Step

#: Percent steps have a resolution of 1/100 of a percent.
BUCKETS = 10_000


@lru_cache(maxsize=1 << 17)
def bucket(salt: str, name: str) -> int:
    """The gateway's hash bucket in ``[0, 10000)`` for this salt."""
    return int(hashlib.sha256(f"{salt}/{name}".encode()).hexdigest()[:8], 16) % BUCKETS


def in_percent(salt: str, name: str, percent: int) -> bool:
    """Whether gateway ``name`` falls under ``percent`` for ``salt``."""
    return bucket(salt, name) < percent * 100


@dataclass(frozen=True, slots=True)
class CohortPlan:
    """The cohort layout of one release: which gateways it covers and when each joins."""

    release: Release
    salt: str
    namespace: str
    selector: LabelSelector | None
    steps: tuple[Step, ...]

    @classmethod
    def of(cls, release: Release) -> CohortPlan:
        """The plan of ``release`` (cheap: nothing is hashed until a gateway is asked about)."""
        return cls(
            release=release,
            salt=release.salt,
            namespace=release.namespace,
            selector=release.spec.selector,
            steps=release.spec.steps,
        )

    @property
    def last_step(self) -> int:
        """Index of the last step."""
        return len(self.steps) - 1

    def selects(self, gateway: Gateway) -> bool:
        """Whether the release covers ``gateway`` (same namespace, ``spec.gateways.selector``)."""
        if gateway.namespace != self.namespace:
            return False
        return self.selector is None or self.selector.matches(gateway.labels)

    def first_step(self, gateway: Gateway) -> int | None:
        """The index of the first step whose cohort contains ``gateway``.

        ``None`` when the release does not cover the gateway (or, for a spec whose last step is
        not ``percent: 100``, which the CRD forbids, when no step reaches it).
        """
        if not self.selects(gateway):
            return None
        hashed: int | None = None
        for index, step in enumerate(self.steps):
            if step.percent is not None:
                if hashed is None:
                    hashed = bucket(self.salt, gateway.name)
                if hashed < step.percent * 100:
                    return index
            elif step.selector is not None and step.selector.matches(gateway.labels):
                return index
        return None

    def in_cohort(self, gateway: Gateway, step: int) -> bool:
        """Whether ``gateway`` is in the cumulative cohort of step ``step``."""
        first = self.first_step(gateway)
        return first is not None and first <= step


def first_step(release: Release, gateway: Gateway) -> int | None:
    """The first step index at which ``gateway`` joins ``release`` (``None``: never)."""
    return CohortPlan.of(release).first_step(gateway)


def in_cohort(release: Release, gateway: Gateway, step: int) -> bool:
    """Whether ``gateway`` is assigned the target of ``release`` once step ``step`` is reached."""
    return CohortPlan.of(release).in_cohort(gateway, step)

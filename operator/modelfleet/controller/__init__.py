"""modelfleet.controller: the kopf operator. Handlers parse, call ``core.decide``, and patch.

* :mod:`~modelfleet.controller.handlers`: the kopf registrations (indexes, event handler, timer);
* :mod:`~modelfleet.controller.reconcile`: one reconciliation (read, decide, verify, write once);
* :mod:`~modelfleet.controller.verifier` (with :mod:`modelfleet.fetch`): fetching and
  verifying artifacts against TrustPolicies;
* :mod:`~modelfleet.controller.errors`: the one boundary mapping errors to kopf's;
* :mod:`~modelfleet.controller.runner`: settings, login, metrics, ``run()``.
"""

from __future__ import annotations

from modelfleet.controller.runner import OperatorOptions, run

__all__ = ["OperatorOptions", "run"]

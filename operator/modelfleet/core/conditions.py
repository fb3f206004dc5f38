"""kstatus-compliant conditions: set one without moving ``lastTransitionTime`` needlessly.

``lastTransitionTime`` changes only when a condition's ``status`` changes (True/False/Unknown);
reason, message and ``observedGeneration`` follow the latest decision.

Readiness tools (Flux health checks and ``wait: true``, kpt, cli-utils: all through
``sigs.k8s.io/cli-utils/pkg/kstatus``) read ``status.observedGeneration`` and the two
"abnormal-true" conditions ``Reconciling`` and ``Stalled``; ``kubectl wait --for=condition=Ready``
reads ``Ready``. :func:`release_conditions` keeps them consistent with the phase, so that:

* a release the operator has not observed yet (``observedGeneration`` behind) is InProgress;
* Verifying, Progressing and Paused are InProgress (``Reconciling=True``; its reason says why:
  ``WaitingForReports``, ``PausedBySpec``, ``Inconclusive``...);
* Succeeded is Current (``Ready=True``, neither ``Reconciling`` nor ``Stalled``);
* Rejected, Aborted, Blocked and a release in conflict are Failed (``Stalled=True``): a human
  must act (a new spec, a ``retry``, non-overlapping selectors, the unmet items of the release
  checklist), so ``wait: true`` fails instead of waiting for its timeout. A Blocked release
  still leaves Blocked by itself once its checklist holds. ``Reconciling`` and ``Stalled`` are
  never both True.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from modelfleet.core.phases import Phase
from modelfleet.core.types import Condition

TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"

READY = "Ready"
"""True when the release is Succeeded and not in conflict: every covered gateway runs stable."""
VERIFIED = "Verified"
"""True once the spec's artifact passed verification; False when it was refused."""
PROGRESSING = "Progressing"
"""True while work is under way without a human (Verifying, Progressing)."""
DEGRADED = "Degraded"
"""True when the release stopped short: Rejected or Aborted."""
CONFLICT = "Conflict"
"""True when another release of the same model covers some of the same gateways."""
RECONCILING = "Reconciling"
"""kstatus: True while the operator works towards the spec on its own (Verifying, Progressing,
Paused): the release is InProgress."""
STALLED = "Stalled"
"""kstatus: True when nothing more happens without a human (Rejected, Aborted, Blocked,
Conflict): the release is Failed."""

#: Phases in which the operator is still working on the spec by itself.
_WORKING = frozenset({Phase.PENDING, Phase.VERIFYING, Phase.PROGRESSING, Phase.PAUSED})
#: Phases that end short of the spec, or hold it back, and wait for a human (or, for Blocked,
#: for the release checklist to hold).
_STOPPED = frozenset({Phase.ABORTED, Phase.REJECTED, Phase.BLOCKED})


def status_of(flag: bool | None) -> str:
    """``True``/``False``/``Unknown`` for ``True``/``False``/``None``."""
    return UNKNOWN if flag is None else (TRUE if flag else FALSE)


def set_condition(
    conditions: Iterable[Condition],
    type_: str,
    status: str,
    *,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> tuple[Condition, ...]:
    """``conditions`` with ``type_`` set (appended when new); others unchanged, order kept."""
    out: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type != type_:
            out.append(cond)
            continue
        found = True
        moved = cond.status != status or cond.last_transition_time is None
        out.append(
            replace(
                cond,
                status=status,
                reason=reason,
                message=message,
                observed_generation=generation,
                last_transition_time=now if moved else cond.last_transition_time,
            )
        )
    if not found:
        out.append(Condition(type_, status, reason, message, generation, now))
    return tuple(out)


def is_true(conditions: Iterable[Condition], type_: str) -> bool:
    """Whether condition ``type_`` is present with status ``True``."""
    return any(c.type == type_ and c.status == TRUE for c in conditions)


def release_conditions(
    existing: Iterable[Condition],
    *,
    phase: Phase,
    reason: str,
    message: str,
    has_target: bool,
    conflict: str | None,
    generation: int | None,
    now: datetime,
) -> tuple[Condition, ...]:
    """The ModelRelease conditions for a phase (``conflict``: its message, or ``None``)."""
    verified = {
        Phase.PROGRESSING: TRUE,
        Phase.PAUSED: TRUE,
        Phase.BLOCKED: TRUE,
        Phase.SUCCEEDED: TRUE,
        Phase.REJECTED: FALSE,
        Phase.ABORTED: TRUE if has_target else UNKNOWN,
    }.get(phase, UNKNOWN)
    stalled = phase in _STOPPED or conflict is not None
    reconciling = phase in _WORKING and not stalled
    stall_reason, stall_message = (
        (reason, message) if phase in _STOPPED or conflict is None else ("Conflict", conflict)
    )
    wanted = [
        (
            READY,
            status_of(phase is Phase.SUCCEEDED and conflict is None),
            reason if conflict is None else "Conflict",
            message if conflict is None else conflict,
        ),
        (VERIFIED, verified, reason, message),
        (PROGRESSING, status_of(phase in (Phase.VERIFYING, Phase.PROGRESSING)), reason, message),
        (DEGRADED, status_of(phase in (Phase.ABORTED, Phase.REJECTED)), reason, message),
        (
            CONFLICT,
            status_of(conflict is not None),
            "Conflict" if conflict is not None else "NoConflict",
            conflict or "no other release of this model covers these gateways",
        ),
        (
            RECONCILING,
            status_of(reconciling),
            reason if reconciling else phase.value,
            message if reconciling else f"the operator has nothing left to do ({phase.value})",
        ),
        (
            STALLED,
            status_of(stalled),
            stall_reason if stalled else phase.value,
            stall_message if stalled else f"no human action is needed ({phase.value})",
        ),
    ]
    conds = tuple(existing)
    for type_, status, why, text in wanted:
        conds = set_condition(
            conds, type_, status, reason=why, message=text, generation=generation, now=now
        )
    return conds

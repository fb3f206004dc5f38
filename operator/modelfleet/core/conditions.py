"""kstatus-style conditions: set one without moving ``lastTransitionTime`` needlessly.

``lastTransitionTime`` changes only when a condition's ``status`` changes (True/False/Unknown);
reason, message and ``observedGeneration`` follow the latest decision.
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
    """The five ModelRelease conditions for a phase (``conflict``: its message, or ``None``)."""
    verified = {
        Phase.PROGRESSING: TRUE,
        Phase.PAUSED: TRUE,
        Phase.SUCCEEDED: TRUE,
        Phase.REJECTED: FALSE,
        Phase.ABORTED: TRUE if has_target else UNKNOWN,
    }.get(phase, UNKNOWN)
    wanted = [
        (READY, status_of(phase is Phase.SUCCEEDED and conflict is None), reason, message),
        (VERIFIED, verified, reason, message),
        (PROGRESSING, status_of(phase in (Phase.VERIFYING, Phase.PROGRESSING)), reason, message),
        (DEGRADED, status_of(phase in (Phase.ABORTED, Phase.REJECTED)), reason, message),
        (
            CONFLICT,
            status_of(conflict is not None),
            "Conflict" if conflict is not None else "NoConflict",
            conflict or "no other release of this model covers these gateways",
        ),
    ]
    conds = tuple(existing)
    for type_, status, why, text in wanted:
        conds = set_condition(
            conds, type_, status, reason=why, message=text, generation=generation, now=now
        )
    return conds

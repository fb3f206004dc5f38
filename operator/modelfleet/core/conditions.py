"""kstatus-style conditions: set one without moving ``lastTransitionTime`` needlessly.

``lastTransitionTime`` changes only when a condition's ``status`` changes (True/False/Unknown);
reason, message and ``observedGeneration`` follow the latest decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from modelfleet.core.types import Condition

TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"


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

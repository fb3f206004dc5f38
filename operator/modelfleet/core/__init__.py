"""Pure rollout logic: cohorts, ``desired_state``, gates and ``decide()``.

No I/O and no clock reads (``now`` is always an argument); imports none of kopf, kubernetes,
aiohttp, sigstore or yaml. The operator and the fleet API both call :func:`desired_state`, so what
the operator counts and what gateways are told can never disagree; :func:`decide` is the whole
ModelRelease state machine (rules in ``docs/rollout.md``).
"""

from __future__ import annotations

from modelfleet.core.checklist import ChecklistItem, ChecklistStatus, Unmet
from modelfleet.core.cohorts import BUCKETS, CohortPlan, bucket, first_step, in_cohort
from modelfleet.core.decide import decide
from modelfleet.core.decision import Decision, Event, FleetView
from modelfleet.core.desired import Assigner, Assignment, Role, desired_state
from modelfleet.core.gates import DEFAULT_TUNING, Measurement, Tuning, judge, measure
from modelfleet.core.gateway import Gateway, HealthReport, ModelState, ModelStateKind
from modelfleet.core.phases import ROLLING_PHASES, TARGET_PHASES, TRANSITIONS, Phase
from modelfleet.core.selectors import LabelSelector, Operator, Requirement
from modelfleet.core.times import (
    DurationError,
    format_duration,
    format_time,
    parse_duration,
    parse_time,
)
from modelfleet.core.types import (
    Action,
    ActionKind,
    CohortStatus,
    Condition,
    GateResult,
    Gates,
    GateStatus,
    HistoryEntry,
    Owner,
    Release,
    ReleaseSpec,
    ReleaseStatus,
    RollbackMode,
    RolloutStatus,
    Source,
    Step,
)
from modelfleet.core.versions import Provenance, Verification, VersionSnapshot

__all__ = [
    "BUCKETS",
    "DEFAULT_TUNING",
    "ROLLING_PHASES",
    "TARGET_PHASES",
    "TRANSITIONS",
    "Action",
    "ActionKind",
    "Assigner",
    "Assignment",
    "ChecklistItem",
    "ChecklistStatus",
    "CohortPlan",
    "CohortStatus",
    "Condition",
    "Decision",
    "DurationError",
    "Event",
    "FleetView",
    "GateResult",
    "GateStatus",
    "Gates",
    "Gateway",
    "HealthReport",
    "HistoryEntry",
    "LabelSelector",
    "Measurement",
    "ModelState",
    "ModelStateKind",
    "Operator",
    "Owner",
    "Phase",
    "Provenance",
    "Release",
    "ReleaseSpec",
    "ReleaseStatus",
    "Requirement",
    "Role",
    "RollbackMode",
    "RolloutStatus",
    "Source",
    "Step",
    "Tuning",
    "Unmet",
    "Verification",
    "VersionSnapshot",
    "bucket",
    "decide",
    "desired_state",
    "first_step",
    "format_duration",
    "format_time",
    "in_cohort",
    "judge",
    "measure",
    "parse_duration",
    "parse_time",
]

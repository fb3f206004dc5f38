"""One-shot manual actions (annotation ``modelfleet.dev/action``): which one runs, which is
ignored, and the ``ActionIgnored`` Event that says why.

An action runs at most once per id (``status.rollout.lastActionId`` records the id at once,
whatever happens). An action annotated without ``modelfleet.dev/action-id`` has the generated id
``auto:<action>``: it runs once while the annotation stays, and once the annotation is gone the
recorded id is forgotten, so annotating again runs it again (what ``kubectl annotate`` users
expect). Rules in ``docs/rollout.md`` (rule 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelfleet.core.decision import NORMAL, WARNING, Event
from modelfleet.core.phases import Phase
from modelfleet.core.types import GENERATED_ACTION_ID, Action, ActionKind

ACTION_ANNOTATION = "modelfleet.dev/action"
"""The annotation an action is read from (named in ``ActionIgnored`` events)."""
IGNORED = "ActionIgnored"

#: When each action applies (the rest of an ``ActionIgnored`` message).
APPLIES: dict[ActionKind, str] = {
    ActionKind.PROMOTE: "promote applies while a rollout is Progressing or Paused",
    ActionKind.ABORT: "abort applies while Verifying, Progressing or Paused",
    ActionKind.RETRY: "retry applies after Rejected or Aborted",
}


@dataclass(frozen=True, slots=True)
class Taken:
    """What an annotated action means for one decision."""

    kind: ActionKind | None
    """The action to run now (``None``: none)."""
    last_action_id: str | None
    """What ``status.rollout.lastActionId`` becomes."""
    event: Event | None = None
    """An ``ActionIgnored`` event for an unknown action name."""


def take(action: Action | None, last_action_id: str | None) -> Taken:
    """The pending action, given the id of the last one taken."""
    if action is None:
        if last_action_id is not None and last_action_id.startswith(GENERATED_ACTION_ID):
            return Taken(None, None)  # the annotation is gone: annotating again runs it again
        return Taken(None, last_action_id)
    if action.id == last_action_id:
        return Taken(None, last_action_id)
    if action.kind is None:
        message = (
            f"{ACTION_ANNOTATION}={action.name!r} ignored: not an action; "
            "use promote, abort or retry"
        )
        return Taken(None, action.id, Event(WARNING, IGNORED, message))
    return Taken(action.kind, action.id)


def ignored(kind: ActionKind, phase: Phase, why: str | None = None) -> Event:
    """The event for ``kind`` that will not run: ``why``, by default that it means nothing in
    ``phase``, and when it applies."""
    why = why or f"the release is {phase}; {APPLIES[kind]}"
    return Event(NORMAL, IGNORED, f"{kind.value} ignored: {why}")

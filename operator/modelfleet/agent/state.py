"""``<dataDir>/state.json``: what the agent remembers across restarts, written atomically.

The ground truth of *what runs* is the ``active`` link and the slots' ``.verified`` markers
(:mod:`modelfleet.agent.slots`); ``state.json`` adds what they cannot say: the last reported state
and message per model, which slot contents passed their health check, and which targets failed
(so a version that was rolled back is not activated again on every restart). A missing or
corrupt file is not fatal: the agent starts from the disk layout and says so in the log.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modelfleet.agent.protocol import ModelState
from modelfleet.agent.slots import atomic_write

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FailedTarget:
    """A target that must not be retried while the desired digest and the policy stay the same."""

    digest: str
    version: str
    state: ModelState
    reason: str
    policy_digest: str


@dataclass(frozen=True)
class ModelRecord:
    """The remembered state of one model."""

    version: str = ""
    digest: str = ""
    slot: str = ""
    state: ModelState = ModelState.IDLE
    message: str = ""
    since: str = ""
    healthy: dict[str, str] = field(default_factory=dict)  # slot -> digest that passed
    failed: FailedTarget | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "digest": self.digest,
            "slot": self.slot,
            "state": self.state.value,
            "message": self.message,
            "since": self.since,
            "healthy": dict(sorted(self.healthy.items())),
        }
        if self.failed is not None:
            f = self.failed
            out["failed"] = {
                "digest": f.digest,
                "version": f.version,
                "state": f.state.value,
                "reason": f.reason,
                "policyDigest": f.policy_digest,
            }
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ModelRecord:
        failed = raw.get("failed")
        return cls(
            version=str(raw.get("version", "")),
            digest=str(raw.get("digest", "")),
            slot=str(raw.get("slot", "")),
            state=ModelState(raw.get("state", ModelState.IDLE.value)),
            message=str(raw.get("message", "")),
            since=str(raw.get("since", "")),
            healthy={str(k): str(v) for k, v in dict(raw.get("healthy") or {}).items()},
            failed=FailedTarget(
                digest=str(failed["digest"]),
                version=str(failed.get("version", "")),
                state=ModelState(failed["state"]),
                reason=str(failed.get("reason", "")),
                policy_digest=str(failed.get("policyDigest", "")),
            )
            if isinstance(failed, dict)
            else None,
        )


class StateStore:
    """Reads and atomically rewrites ``state.json``; one writer (the agent) per data dir."""

    def __init__(self, data_dir: Path, gateway: str, *, durable: bool = True) -> None:
        self.durable = durable
        self.path = data_dir / STATE_FILE
        self.gateway = gateway
        self.models: dict[str, ModelRecord] = {}

    def load(self) -> None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if raw.get("formatVersion") != FORMAT_VERSION:
                raise ValueError(f"unknown formatVersion {raw.get('formatVersion')!r}")
            self.models = {
                str(name): ModelRecord.from_json(rec) for name, rec in raw["models"].items()
            }
        except FileNotFoundError:
            self.models = {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning(
                "gateway %s: ignoring unreadable %s (%s); starting from the slots on disk",
                self.gateway,
                self.path,
                exc,
            )
            self.models = {}

    def get(self, model: str) -> ModelRecord:
        return self.models.get(model, ModelRecord())

    def put(self, model: str, record: ModelRecord, *, durable: bool = True) -> None:
        """Replace one model's record; with ``durable`` (the default) the file is written and
        fsynced before returning. Passing steps (Downloading, Verifying, ...) are kept in memory
        only and reach the file with the next durable write: after a crash the agent re-derives
        them from the slots on disk anyway."""
        self.models[model] = record
        if durable:
            self.save()

    def update(self, model: str, **changes: Any) -> ModelRecord:
        record = replace(self.get(model), **changes)
        self.put(model, record)
        return record

    def save(self) -> None:
        doc = {
            "formatVersion": FORMAT_VERSION,
            "gateway": self.gateway,
            "models": {name: rec.to_json() for name, rec in sorted(self.models.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
        atomic_write(self.path, body, durable=self.durable)

"""The A/B slots of one model on disk, and the invariant that makes a kill at any instant safe.

Layout under ``<dataDir>/<model>/``::

    slots/A/            one complete install: artifact, signature, attestations, model/
    slots/A/.verified   JSON marker written (atomically) only after verification succeeded
    slots/B/
    active -> slots/A   relative symlink, swapped atomically (symlink to a temp name + rename)

Invariant: ``active`` only ever points at a slot whose ``.verified`` marker names the digest the
caller expected. A slot's marker is removed (and the removal made durable) before anything in that
slot changes, the marker is written after verification, and the active slot is never modified.
So whatever instant the process dies at, ``active`` names a verified model (or nothing).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from modelfleet.errors import ModelfleetError

log = logging.getLogger(__name__)

SLOTS: tuple[str, str] = ("A", "B")
MARKER = ".verified"
ACTIVE = "active"
PART_SUFFIX = ".part"


class SlotError(ModelfleetError):
    """A slot operation was refused because it would break the activation invariant."""


@dataclass(frozen=True)
class Marker:
    """What was verified in a slot, and against which policy."""

    digest: str
    version: str
    model_path: str
    artifact: str = ""
    signature: str = ""
    attestations: tuple[str, ...] = ()
    signature_digest: str = ""
    policy_digest: str = ""
    verified_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def fsync_dir(path: Path) -> None:
    """Make a rename/unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush one file's data to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every regular file and folder under ``root`` (cheap for clean ones), so a
    ``.verified`` marker written next is never ahead of the bytes it vouches for."""
    for folder, dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                fsync_file(path)
        fsync_dir(Path(folder))
        dirs[:] = [x for x in dirs if not (Path(folder) / x).is_symlink()]


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new content, never a mix:
    temporary file in the same folder, fsync, rename, fsync the folder (the fsyncs only when
    ``durable``: the simulator's thousands of gateways on one disk skip them)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


class ModelSlots:
    """Slots and the ``active`` link of one model under ``root`` (``<dataDir>/<model>``)."""

    def __init__(self, root: Path, model: str, *, durable: bool = True, gateway: str = "") -> None:
        self.root = root
        self.model = model
        self.durable = durable
        self.label = f"gateway {gateway} model {model}" if gateway else f"model {model}"

    def _sync(self, folder: Path) -> None:
        if self.durable:
            fsync_dir(folder)

    def ensure(self) -> None:
        for slot in SLOTS:
            self.slot_dir(slot).mkdir(parents=True, exist_ok=True)

    def slot_dir(self, slot: str) -> Path:
        if slot not in SLOTS:
            raise SlotError(f"model {self.model}: no slot {slot!r}")
        return self.root / "slots" / slot

    @property
    def active_link(self) -> Path:
        return self.root / ACTIVE

    def active_slot(self) -> str | None:
        """The slot ``active`` points at, or None (no link, or a link we did not write)."""
        try:
            target = os.readlink(self.active_link)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("%s: unreadable %s: %s", self.label, self.active_link, exc)
            return None
        parts = Path(target).parts
        if len(parts) == 2 and parts[0] == "slots" and parts[1] in SLOTS:
            return parts[1]
        log.warning("%s: active link points at unexpected %r", self.label, target)
        return None

    def other(self, slot: str | None) -> str:
        """The slot that is not ``slot`` (A when nothing is active)."""
        return "B" if slot == "A" else "A"

    def marker(self, slot: str) -> Marker | None:
        path = self.slot_dir(slot) / MARKER
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            raw["attestations"] = tuple(raw.get("attestations") or ())
            marker = Marker(**raw)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("%s: slot %s: unreadable marker: %s", self.label, slot, exc)
            return None
        if not (self.slot_dir(slot) / marker.model_path).exists():
            log.warning("%s: slot %s: marker names missing %s", self.label, slot, marker)
            return None
        return marker

    def model_path(self, slot: str) -> Path | None:
        """The verified model (file or folder) in ``slot``, if the slot holds one."""
        marker = self.marker(slot)
        return self.slot_dir(slot) / marker.model_path if marker else None

    def active_model_path(self) -> Path | None:
        """The model path through the ``active`` link (stable across swaps)."""
        slot = self.active_slot()
        marker = self.marker(slot) if slot else None
        return self.active_link / marker.model_path if marker else None

    def prepare(self, slot: str, keep_part: str | None = None) -> Path:
        """Empty ``slot`` for a new install, keeping the partial download named ``keep_part``.

        The marker goes first (durably), so a kill mid-way leaves an unverified slot that
        nothing activates. Refuses to touch the active slot.
        """
        if slot == self.active_slot():
            raise SlotError(f"model {self.model}: refusing to modify active slot {slot}")
        d = self.slot_dir(slot)
        d.mkdir(parents=True, exist_ok=True)
        marker = d / MARKER
        if marker.exists():
            marker.unlink()
            self._sync(d)
        for child in d.iterdir():
            if keep_part is not None and child.name == keep_part:
                continue
            remove_path(child)
        return d

    def write_marker(self, slot: str, marker: Marker) -> None:
        if slot == self.active_slot():
            raise SlotError(f"model {self.model}: refusing to re-mark active slot {slot}")
        if not (self.slot_dir(slot) / marker.model_path).exists():
            raise SlotError(f"model {self.model}: slot {slot} has no {marker.model_path}")
        atomic_write(self.slot_dir(slot) / MARKER, marker.to_json().encode(), durable=self.durable)

    def refresh_marker(self, slot: str, marker: Marker) -> None:
        """Replace a slot's marker by one for the same digest and files (a re-verification under
        a new policy); allowed on the active slot because nothing else changes."""
        current = self.marker(slot)
        if current is None or (current.digest, current.model_path) != (
            marker.digest,
            marker.model_path,
        ):
            raise SlotError(f"model {self.model}: slot {slot} does not hold {marker.digest}")
        atomic_write(self.slot_dir(slot) / MARKER, marker.to_json().encode(), durable=self.durable)

    def activate(self, slot: str, digest: str) -> None:
        """Point ``active`` at ``slot`` atomically, only if its marker names ``digest``."""
        marker = self.marker(slot)
        if marker is None or marker.digest != digest:
            found = marker.digest if marker else "no verified marker"
            raise SlotError(
                f"model {self.model}: slot {slot} is not verified for {digest} (found {found})"
            )
        tmp = self.root / f".{ACTIVE}.{secrets.token_hex(4)}.tmp"
        os.symlink(f"slots/{slot}", tmp)
        try:
            os.replace(tmp, self.active_link)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._sync(self.root)

    def deactivate(self) -> None:
        """Remove the ``active`` link (no model runs)."""
        with contextlib.suppress(FileNotFoundError):
            self.active_link.unlink()
            self._sync(self.root)

    def recover(self) -> list[str]:
        """Restore the invariant after a crash; returns what was done, for the log.

        Removes temporaries, repairs an ``active`` link that does not name a verified slot
        (switching to the other slot if that one is verified, else removing the link), and
        empties unverified inactive slots except for resumable ``*.part`` downloads.
        """
        self.ensure()
        done: list[str] = []
        for child in self.root.iterdir():
            if child.name.startswith(f".{ACTIVE}.") and child.name.endswith(".tmp"):
                remove_path(child)
                done.append(f"removed {child.name}")
        link_exists = self.active_link.is_symlink() or self.active_link.exists()
        active = self.active_slot()
        if link_exists and (active is None or self.marker(active) is None):
            other = self.other(active)
            other_marker = self.marker(other) if active is not None else None
            if other_marker is not None:
                self.activate(other, other_marker.digest)
                done.append(f"active named unverified slot {active}; switched to {other}")
                active = other
            else:
                self.deactivate()
                done.append(f"active named unverified slot {active}; removed the link")
                active = None
        for slot in SLOTS:
            if slot == active:
                continue
            d = self.slot_dir(slot)
            for child in d.iterdir():
                if child.name.endswith(".tmp"):
                    remove_path(child)
            if self.marker(slot) is None:
                leftovers = [c for c in d.iterdir() if not c.name.endswith(PART_SUFFIX)]
                if leftovers:
                    for child in leftovers:
                        remove_path(child)
                    done.append(f"emptied unverified slot {slot}")
        return done


def remove_path(path: Path) -> None:
    """Remove a file, link or directory tree; a missing one is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

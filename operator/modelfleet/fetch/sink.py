"""Where fetched bytes go: :class:`Sink` writes ``<dest>.part``, counts and hashes as it writes,
and stops at the size limit.

On a failure the partial file is kept only when resuming later makes sense (a dropped
connection); it is removed when the bytes are wrong (over the limit, digest mismatch, a
permanent error) and when the disk is full (so a full disk does not stay full because of us).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from modelfleet.fetch.errors import FetchError, storage_error

CHUNK = 1 << 20

#: Called with (bytes so far, total or None) while a download runs.
Progress = Callable[[int, int | None], None]


def part_path(dest: Path) -> Path:
    """The partial file next to ``dest``."""
    return dest.with_name(dest.name + ".part")


class Sink:
    """A context manager around ``<dest>.part`` (see the module docstring)."""

    def __init__(
        self,
        uri: str,
        part: Path,
        *,
        max_bytes: int,
        resume: bool,
        total: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.uri = uri
        self.part = part
        self.max_bytes = max_bytes
        self.total = total
        self.size = 0
        self._resume = resume
        self._progress = progress
        self._hash = hashlib.sha256()
        self._fh: BinaryIO | None = None

    def __enter__(self) -> Sink:
        try:
            if self._resume and self.part.exists():
                with self.part.open("rb") as old:
                    while chunk := old.read(CHUNK):
                        self._hash.update(chunk)
                        self.size += len(chunk)
                self._fh = self.part.open("ab")
            else:
                self._fh = self.part.open("wb")
        except OSError as exc:
            self.remove()
            raise storage_error(self.uri, exc) from exc
        return self

    def write(self, chunk: bytes) -> None:
        assert self._fh is not None, "Sink used outside 'with'"
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise FetchError(self.uri, "size", f"larger than the limit of {self.max_bytes} bytes")
        try:
            self._fh.write(chunk)
        except OSError as exc:
            raise storage_error(self.uri, exc) from exc
        self._hash.update(chunk)
        if self._progress is not None:
            self._progress(self.size, self.total)

    def finish(self) -> None:
        """Flush to the file system (a full disk may only show now)."""
        assert self._fh is not None
        try:
            self._fh.flush()
        except OSError as exc:
            raise storage_error(self.uri, exc) from exc

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.part.unlink()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                if exc is None:
                    self.remove()
                    raise
            self._fh = None
        if isinstance(exc, FetchError) and (not exc.transient or exc.check == "storage"):
            self.remove()

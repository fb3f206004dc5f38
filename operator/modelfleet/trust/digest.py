"""Streaming digests: the artifact digest and the model-signing manifest of a model.

Everything here reads files in fixed-size chunks into one reused buffer (``readinto``), so memory
stays constant whatever the model size; hashlib releases the GIL on large updates, so files of a
folder are hashed in parallel threads. The manifest format is model_signing's: for ``files``
serialization one entry per regular file, keyed by its POSIX path relative to the model folder
(``"."`` when the model is a single file); for ``shards`` one entry per ``path:start:end`` shard
(empty files have no shard).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modelfleet.trust.errors import VerificationError
from modelfleet.trust.policy import Hashing

#: Read size: large enough to amortise syscalls and Python overhead, small enough for caches.
BUFFER_SIZE = 4 * 1024 * 1024

HashFactory = Callable[[], Any]
HASH_FACTORIES: dict[str, HashFactory] = {"sha256": hashlib.sha256, "blake2": hashlib.blake2b}
#: The ``hash_type`` model_signing records for each policy hashing method.
HASH_TYPE_NAMES: dict[str, str] = {"sha256": "sha256", "blake2": "blake2b"}


def _advise_sequential(fd: int) -> None:
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):  # only a hint; some file systems refuse it
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)


def read_chunks(
    path: Path, buffer_size: int = BUFFER_SIZE, *, read_ahead: bool = True
) -> Iterator[memoryview]:
    """The file's bytes in chunks, read ahead by a helper thread into a ring of three buffers.

    Reading (``readinto``) and hashing both release the GIL, so the disk read of the next chunk
    overlaps the hashing of this one; memory stays at three buffers. Each chunk is valid until
    the next one is requested. Small files (or ``read_ahead=False``) are read inline.
    """
    with open(path, "rb", buffering=0) as f:
        _advise_sequential(f.fileno())
        if not read_ahead or os.fstat(f.fileno()).st_size <= 2 * buffer_size:
            buffer = bytearray(buffer_size)
            view = memoryview(buffer)
            while n := f.readinto(view):
                yield view[:n]
            return
        free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
        full: queue.SimpleQueue[tuple[bytearray | BaseException, int]] = queue.SimpleQueue()
        for _ in range(3):
            free.put(bytearray(buffer_size))

        def reader() -> None:
            try:
                while (buf := free.get()) is not None:
                    n = f.readinto(buf)
                    full.put((buf, n))
                    if not n:
                        return
            except BaseException as exc:  # handed to the consumer, raised there
                full.put((exc, 0))

        thread = threading.Thread(target=reader, name="modelfleet-read-ahead", daemon=True)
        thread.start()
        try:
            while True:
                item, n = full.get()
                if isinstance(item, BaseException):
                    raise item
                if not n:
                    return
                yield memoryview(item)[:n]
                free.put(item)
        finally:
            free.put(None)
            thread.join()


def digest_file(path: Path, *, buffer_size: int = BUFFER_SIZE) -> str:
    """``"sha256:<hex>"`` of the file's bytes, streamed with constant memory."""
    hasher = hashlib.sha256()
    try:
        for chunk in read_chunks(path, buffer_size):
            hasher.update(chunk)
    except OSError as exc:
        raise VerificationError("input", f"cannot read {path}: {exc.strerror}") from None
    return f"sha256:{hasher.hexdigest()}"


class ContentHasher:
    """Hashes one file's bytes as they stream by, per file or per shard."""

    def __init__(self, identifier: str, hashing: Hashing) -> None:
        self._identifier = identifier
        self._factory = HASH_FACTORIES[hashing.method]
        self._shard_size = hashing.shard_size if hashing.serialization == "shards" else None
        self._hasher = self._factory()
        self._offset = 0
        self._shard_start = 0
        self._items: dict[str, str] = {}

    def update(self, data: memoryview | bytes) -> None:
        if self._shard_size is None:
            self._hasher.update(data)
            self._offset += len(data)
            return
        view = memoryview(data)
        while view:
            room = self._shard_start + self._shard_size - self._offset
            part, view = view[:room], view[room:]
            self._hasher.update(part)
            self._offset += len(part)
            if self._offset - self._shard_start == self._shard_size:
                self._close_shard()

    def _close_shard(self) -> None:
        key = f"{self._identifier}:{self._shard_start}:{self._offset}"
        self._items[key] = self._hasher.hexdigest()
        self._hasher = self._factory()
        self._shard_start = self._offset

    def finish(self) -> dict[str, str]:
        """The manifest items of this file: ``{identifier: hex}``."""
        if self._shard_size is None:
            return {self._identifier: self._hasher.hexdigest()}
        if self._offset > self._shard_start:
            self._close_shard()
        return dict(self._items)


def hash_file(
    path: Path, identifier: str, hashing: Hashing, *, read_ahead: bool = True
) -> dict[str, str]:
    """Manifest items of one file on disk."""
    hasher = ContentHasher(identifier, hashing)
    for chunk in read_chunks(path, read_ahead=read_ahead):
        hasher.update(chunk)
    return hasher.finish()


def is_ignored(relative: str, ignore: Iterable[str]) -> bool:
    """model_signing's rule: an ignored path hides itself and everything below it."""
    for raw in ignore:
        p = raw.strip("/")
        if p in ("", "."):
            continue
        if relative == p or relative.startswith(p + "/"):
            return True
    return False


# Complexity waiver: one branch per manifest entry kind and hashing mode.
def list_model_files(  # noqa: PLR0912
    model: Path, hashing: Hashing, ignore: Iterable[str]
) -> list[tuple[Path, str]]:
    """Regular files of a model (folder or single file) as ``(path, identifier)``, sorted.

    A symbolic link is a rejection unless ``hashing.allow_symlinks``; an allowed link must point
    at a regular file inside the model folder. Sockets, pipes and devices are always rejected.
    """
    ignore = tuple(ignore)
    try:
        st = os.lstat(model)
    except OSError as exc:
        raise VerificationError("input", f"cannot read model {model}: {exc.strerror}") from None
    if stat.S_ISREG(st.st_mode):
        return [(model, ".")]
    if stat.S_ISLNK(st.st_mode):
        raise VerificationError("integrity", f"model path {model} is a symbolic link")
    if not stat.S_ISDIR(st.st_mode):
        raise VerificationError("integrity", f"model path {model} is not a file or folder")
    root = model.resolve()
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(model, followlinks=False):
        base = Path(dirpath)
        rel_dir = base.relative_to(model).as_posix()
        for name in sorted(dirnames + filenames):
            path = base / name
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if is_ignored(rel, ignore):
                if name in dirnames:
                    dirnames.remove(name)
                continue
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                if not hashing.allow_symlinks:
                    raise VerificationError(
                        "integrity",
                        f"{rel!r} is a symbolic link and the policy does not allow symlinks",
                    )
                target = path.resolve()
                if not target.is_relative_to(root) or not target.is_file():
                    raise VerificationError(
                        "integrity",
                        f"symbolic link {rel!r} points outside the model or not at a file",
                    )
                if name in dirnames:
                    dirnames.remove(name)
                found.append((path, rel))
            elif stat.S_ISREG(mode):
                found.append((path, rel))
            elif not stat.S_ISDIR(mode):
                raise VerificationError("integrity", f"{rel!r} is not a regular file or folder")
    return sorted(found, key=lambda item: item[1])


def compute_manifest(
    model: Path,
    hashing: Hashing,
    ignore: Iterable[str] = (),
    *,
    known: dict[str, str] | None = None,
    max_workers: int | None = None,
) -> dict[str, str]:
    """The model's manifest ``{identifier: hex digest}``, hashing files in parallel threads.

    ``known`` holds items already computed by the caller (e.g. the artifact digest of a
    single-file model, which is its sha256 ``files`` entry) so no byte is read twice.
    """
    files = list_model_files(model, hashing, ignore)
    todo = [(p, ident) for p, ident in files if known is None or ident not in known]
    manifest: dict[str, str] = {} if known is None else dict(known)
    # like model_signing (cpu + 4 threads): spare threads keep a fair share of a busy machine
    workers = max_workers or min(len(todo), (os.cpu_count() or 1) + 4, 8) or 1
    try:
        if workers == 1:
            for path, ident in todo:
                manifest.update(hash_file(path, ident, hashing))
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                # files already hash in parallel: no read-ahead thread per file
                for items in pool.map(
                    lambda t: hash_file(t[0], t[1], hashing, read_ahead=False), todo
                ):
                    manifest.update(items)
    except OSError as exc:
        raise VerificationError("input", f"cannot read model file: {exc}") from None
    return manifest


def _item_order(identifier: str) -> tuple[tuple[str, ...], int, int]:
    """model_signing's order of manifest keys: by path components, then shard offsets."""
    pieces = identifier.rsplit(":", 2)
    if len(pieces) == 3 and pieces[1].isdigit() and pieces[2].isdigit():
        path, start, end = pieces[0], int(pieces[1]), int(pieces[2])
    else:
        path, start, end = identifier, 0, 0
    return tuple(p for p in path.split("/") if p not in ("", ".")), start, end


def root_digest(manifest: dict[str, str]) -> str:
    """model_signing's subject digest: sha256 over the item digests in manifest-key order."""
    hasher = hashlib.sha256()
    for key in sorted(manifest, key=_item_order):
        hasher.update(bytes.fromhex(manifest[key]))
    return f"sha256:{hasher.hexdigest()}"

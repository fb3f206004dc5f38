"""Crafted tar archives for attack tests, and ways to prove nothing was written outside a folder.

An attack archive reuses a genuine model's members (so the genuine signature still names them)
and adds or swaps members: symbolic links, hard links, devices, fifos, absolute or ``..`` paths,
duplicates, unsigned files, and large runs of zeros (a decompression bomb costs about 1 MB per
GiB in a ``.tar.gz``; the zeros are generated while packing, never held in memory).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

GiB = 1024**3
MiB = 1024**2


@dataclass(frozen=True)
class Member:
    """One tar member: a regular file (``data`` or ``zeros`` bytes of zeros), or another type."""

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    zeros: int = 0  # a regular file of this many zero bytes (instead of ``data``)
    linkname: str = ""

    def info(self) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self.name)
        info.type = self.type
        info.mode = 0o755 if self.type == tarfile.DIRTYPE else 0o644
        info.linkname = self.linkname
        if self.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = 1, 3  # /dev/null
        if self.type in tarfile.REGULAR_TYPES:
            info.size = self.zeros or len(self.data)
        return info


def file(name: str, data: bytes) -> Member:
    return Member(name, data=data)


def zeros(name: str, size: int) -> Member:
    return Member(name, zeros=size)


def symlink(name: str, target: str) -> Member:
    return Member(name, tarfile.SYMTYPE, linkname=target)


def hardlink(name: str, target: str) -> Member:
    return Member(name, tarfile.LNKTYPE, linkname=target)


def folder(name: str) -> Member:
    return Member(name, tarfile.DIRTYPE)


def device(name: str, kind: bytes = tarfile.CHRTYPE) -> Member:
    return Member(name, kind)


def fifo(name: str) -> Member:
    return Member(name, tarfile.FIFOTYPE)


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self.left)
        memoryview(b)[:n] = bytes(n)
        self.left -= n
        return n


def genuine_members(model_dir: Path) -> list[Member]:
    """The files of a signed model folder, as members, sorted like ``pack_model`` packs them."""
    out = []
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out.append(file(path.relative_to(model_dir).as_posix(), path.read_bytes()))
    return out


def write_tar(path: Path, members: Iterable[Member]) -> Path:
    """Writes ``members`` in order; gzip-compressed (fast level) when ``path`` ends in .gz/.tgz."""
    gz = path.name.endswith((".tar.gz", ".tgz"))
    with tarfile.open(path, "w:gz", compresslevel=1) if gz else tarfile.open(path, "w") as tar:
        for m in members:
            info = m.info()
            if m.type in tarfile.REGULAR_TYPES:
                src = _Zeros(m.zeros) if m.zeros else io.BytesIO(m.data)
                tar.addfile(info, src)  # type: ignore[arg-type]
            else:
                tar.addfile(info)
    return path


# -- evidence ---------------------------------------------------------------------------------


def tree_state(root: Path, *, skip: Sequence[str] = ()) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root`` (links not followed): kind, mode, size and content digest.

    ``skip`` lists ``root``-relative POSIX paths left out, with everything below them."""
    state: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            path = base / name
            rel = path.relative_to(root).as_posix()
            if rel in skip:
                if name in dirnames:
                    dirnames.remove(name)
                continue
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size, digest)
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                state[rel] = ("other", st.st_mode)
    return state


def bytes_written_by_this_process() -> int:
    """Bytes this process (all its threads) has passed to write(2) so far (``/proc/self/io``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no wchar")

"""Safe, streaming unpacking of model archives (``.tar``, ``.tar.gz``, ``.tgz``).

An archive is read once, front to back (``tarfile`` stream mode), and each member's bytes are
written to the destination and hashed in the same pass, so the model-signing manifest of the
unpacked folder costs no second read. Rejected, with check ``archive``: absolute paths, ``..``
components, duplicate members, device/fifo members, hard links, symbolic links (unless the
policy allows them, and then only pointing inside the model), more than ``max_members`` members
or more than ``max_bytes`` of content (a decompression bomb cannot fill the disk).
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modelfleet.trust.digest import BUFFER_SIZE, ContentHasher, is_ignored
from modelfleet.trust.errors import VerificationError
from modelfleet.trust.policy import Hashing

ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps on what an archive may unpack to."""

    max_bytes: int = 64 * 1024**3
    max_members: int = 100_000


def is_archive(path: Path) -> bool:
    """Whether the artifact is a tar archive, by name or by content."""
    name = path.name.lower()
    if name.endswith(ARCHIVE_SUFFIXES):
        return True
    try:
        return path.is_file() and tarfile.is_tarfile(path)
    except OSError:
        return False


def _member_path(name: str) -> str:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name:
        raise VerificationError("archive", f"member {name!r} would escape the model folder")
    parts = [p for p in pure.parts if p != "."]
    if not parts:
        return "."
    return "/".join(parts)


def extract_archive(
    archive: Path,
    dest: Path,
    hashing: Hashing,
    *,
    ignore: tuple[str, ...] = (),
    limits: ArchiveLimits | None = None,
) -> dict[str, str] | None:
    """Unpacks ``archive`` into the empty folder ``dest`` and returns its manifest.

    Returns ``None`` when the manifest could not be computed in the stream (the archive holds
    symbolic links, whose targets are hashed after unpacking).
    """
    limits = limits or ArchiveLimits()
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise VerificationError("archive", f"destination {dest} is not empty")
    manifest: dict[str, str] = {}
    seen: set[str] = set()
    total = 0
    has_links = False
    buffer = bytearray(BUFFER_SIZE)
    view = memoryview(buffer)
    try:
        with tarfile.open(archive, mode="r|*", bufsize=BUFFER_SIZE) as tar:
            for count, member in enumerate(tar, start=1):
                if count > limits.max_members:
                    raise VerificationError("archive", f"more than {limits.max_members} members")
                rel = _member_path(member.name)
                if rel in seen:
                    raise VerificationError("archive", f"member {rel!r} appears twice")
                seen.add(rel)
                target = dest / rel
                if member.isdir():
                    if rel != ".":
                        target.mkdir(parents=True, exist_ok=True)
                    continue
                if rel == ".":
                    raise VerificationError("archive", "a non-folder member named '.'")
                if member.issym():
                    if not hashing.allow_symlinks:
                        raise VerificationError(
                            "archive",
                            f"member {rel!r} is a symbolic link; the policy allows none",
                        )
                    link = PurePosixPath(rel).parent / member.linkname
                    if (
                        PurePosixPath(member.linkname).is_absolute()
                        or ".." in PurePosixPath(os.path.normpath(link.as_posix())).parts
                    ):
                        raise VerificationError(
                            "archive", f"symbolic link {rel!r} points outside the model"
                        )
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(member.linkname, target)
                    has_links = True
                    continue
                if not member.isreg():
                    raise VerificationError(
                        "archive", f"member {rel!r} is not a regular file or folder"
                    )
                total += member.size
                if total > limits.max_bytes:
                    raise VerificationError(
                        "archive", f"unpacks to more than {limits.max_bytes} bytes"
                    )
                source = tar.extractfile(member)
                if source is None:
                    raise VerificationError("archive", f"member {rel!r} has no content")
                hasher = None if is_ignored(rel, ignore) else ContentHasher(rel, hashing)
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "xb", buffering=0) as out:
                    while True:
                        n = source.readinto(view)  # type: ignore[attr-defined]
                        if not n:
                            break
                        chunk = view[:n]
                        if hasher is not None:
                            hasher.update(chunk)
                        out.write(chunk)
                if hasher is not None:
                    manifest.update(hasher.finish())
    except VerificationError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise VerificationError("archive", f"cannot unpack {archive.name}: {exc}") from None
    return None if has_links else manifest

"""The model folder an archive builds: member paths, the tree of members, and a safe writer.

:class:`Tree` records the archive's members as they come, refusing duplicates, members below a
link or inside a file, and resolves each symbolic link through the archive's other links to the
regular file it names, never outside. :class:`Writer` creates folders, files and links relative to
one folder descriptor with ``O_NOFOLLOW | O_EXCL``, and checks each link it makes against the real
file system. Every refusal is check ``archive``.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from pathlib import Path, PurePosixPath

from modelfleet.trust.errors import VerificationError

MAX_LINK_HOPS = 40  # like the kernel's limit on symbolic links in one lookup
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def fail(reason: str) -> VerificationError:
    return VerificationError("archive", reason)


def member_path(name: str) -> str:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name or "\x00" in name:
        raise fail(f"member {name!r} would escape the model folder")
    parts = [p for p in pure.parts if p != "."]
    if not parts:
        return "."
    return "/".join(parts)


class Tree:
    """The model folder as the archive builds it, checked member by member, never followed."""

    def __init__(self) -> None:
        self.folders: set[str] = {"."}
        self.files: set[str] = set()
        self.links: dict[str, str] = {}  # link -> its target as written in the archive
        self.seen: set[str] = set()

    def add(self, rel: str, kind: str) -> None:
        """Records member ``rel`` (kind ``folder``/``file``/``link``) or refuses it."""
        if rel in self.seen:
            raise fail(f"member {rel!r} appears twice")
        parts = rel.split("/")
        for i in range(1, len(parts)):
            above = "/".join(parts[:i])
            if above in self.links:
                raise fail(f"member {rel!r} lies below symbolic link {above!r}")
            if above in self.files:
                raise fail(f"member {rel!r} would be created inside file {above!r}")
        if kind != "folder" and rel in self.folders:
            raise fail(f"member {rel!r} is not a folder, but the archive has a folder there")
        if kind == "folder" and (rel in self.files or rel in self.links):
            raise fail(f"member {rel!r} appears twice")
        self.seen.add(rel)
        for i in range(1, len(parts)):
            self.folders.add("/".join(parts[:i]))
        {"folder": self.folders, "file": self.files}.get(kind, set()).add(rel)

    def resolve(self, link: str) -> str:
        """The regular file ``link`` names, following the archive's links; never outside."""
        out = link.split("/")[:-1]
        todo = self.links[link].split("/")
        if self.links[link].startswith("/"):
            raise fail(f"symbolic link {link!r} points outside the model (absolute target)")
        hops = 0
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not out:
                    raise fail(f"symbolic link {link!r} points outside the model")
                out.pop()
                continue
            here = "/".join([*out, part])
            if here in self.links:
                hops += 1
                target = self.links[here]
                if hops > MAX_LINK_HOPS or target.startswith("/"):
                    raise fail(f"symbolic link {link!r} points outside the model or loops")
                todo = target.split("/") + todo
                continue
            if here in self.files:
                if todo and any(p not in ("", ".") for p in todo):
                    raise fail(f"symbolic link {link!r} goes through file {here!r}")
                return here
            if here not in self.folders:
                raise fail(f"symbolic link {link!r} points at nothing in the model")
            out.append(part)
        raise fail(f"symbolic link {link!r} points at a folder, not a file")


class Writer:
    """Creates folders, files and links below one folder descriptor, never following a link."""

    def __init__(self, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        self.dest = dest
        self.root = os.open(dest, _DIR_FLAGS)
        self._fds: dict[str, int] = {}
        if os.listdir(self.root):
            self.close()
            raise fail(f"destination {dest} is not empty")

    def folder(self, rel: str) -> int:
        """A descriptor of folder ``rel`` (created if missing), opened component by component."""
        if rel in (".", ""):
            return self.root
        if rel in self._fds:
            return self._fds[rel]
        parent, _, name = rel.rpartition("/")
        pfd = self.folder(parent)
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=pfd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)  # a link here is ELOOP, never followed
        if len(self._fds) >= 64:
            self._drop()
        self._fds[rel] = fd
        return fd

    def create(self, rel: str) -> int:
        parent, _, name = rel.rpartition("/")
        return os.open(name, _FILE_FLAGS, 0o644, dir_fd=self.folder(parent))

    def link(self, rel: str, file: str) -> None:
        """Link ``rel`` straight to the regular file ``file``; then check what it resolves to."""
        parent, _, name = rel.rpartition("/")
        target = posixpath.relpath(file, parent or ".")
        os.symlink(target, name, dir_fd=self.folder(parent))
        real = Path(os.path.realpath(self.dest / rel))
        root = Path(os.path.realpath(self.dest))
        if not real.is_relative_to(root) or not stat.S_ISREG(os.lstat(real).st_mode):
            raise fail(f"symbolic link {rel!r} resolves outside the model or not to a file")

    def _drop(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def close(self) -> None:
        self._drop()
        os.close(self.root)

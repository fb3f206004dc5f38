"""``file://``: copying a local regular file into place, bounded, hashed, cleaned up on failure.

Only regular files are read: a device such as ``/dev/zero``, a FIFO or a socket is refused
before a byte is read (it has no size to check and may never end), and the copy stops at the
limit whatever ``stat`` said, in case the file grows while it is read. The copy goes to
``<dest>.part`` and replaces ``dest`` at the end; on any failure the ``.part`` file is removed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from modelfleet.fetch.errors import FetchError
from modelfleet.fetch.sink import CHUNK, Progress, Sink, part_path


def copy_file(
    uri: str, source: Path, dest: Path, max_bytes: int, progress: Progress | None = None
) -> tuple[int, str]:
    """Copy ``source`` (already checked against the policy) to ``dest``; (size, sha256 hex)."""
    try:
        info = os.stat(source)
        if not stat.S_ISREG(info.st_mode):
            raise FetchError(uri, "file-type", "not a regular file")
        if info.st_size > max_bytes:
            raise FetchError(
                uri,
                "size",
                f"larger than the limit: {info.st_size} bytes exceeds the limit of {max_bytes}",
            )
        # ``source`` is the resolved path: a link swapped in since the check is not followed.
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise FetchError(uri, "not-found", "no such file") from None
    except OSError as exc:
        raise FetchError(uri, "not-found", exc.strerror or str(exc)) from None
    part = part_path(dest)
    with os.fdopen(fd, "rb") as src:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):  # swapped since the stat
            raise FetchError(uri, "file-type", "not a regular file")
        with Sink(uri, part, max_bytes=max_bytes, resume=False, progress=progress) as sink:
            while True:
                try:
                    chunk = src.read(CHUNK)
                except OSError as exc:
                    raise FetchError(uri, "not-found", exc.strerror or str(exc)) from None
                if not chunk:
                    break
                sink.write(chunk)
            sink.finish()
        size, digest = sink.size, sink.hexdigest()
    part.replace(dest)
    return size, digest

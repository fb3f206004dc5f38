"""Giving memory back after connections close: the fleet API's allocator housekeeping.

Every TLS connection costs the C heap far more than its Python objects: uvloop's SSL protocol
mallocs a 256 KiB read buffer per connection, OpenSSL its per-connection state, and each read
a transient 256 KiB ``bytes``. After the first of those buffers is freed, glibc raises its
mmap threshold above 256 KiB (the "dynamic mmap threshold"), so from then on they all come from
the main heap. When the connections close, the memory is free inside the heap but stays
resident: glibc returns pages only from the top of the heap, and the next burst's buffers land
on other pages of the same free areas, so the resident set grows with every cycle of
connections opening and closing (measured: +60 MB per cycle of 2,000 connections, none of it
held by Python objects; ``malloc_trim(0)`` gave it all back). See docs/scale.md.

:class:`MemoryReclaimer` is asked once per housekeeping tick; when enough connections have
closed since the last time it calls glibc's ``malloc_trim(0)``, which returns every free page of
every arena to the system (a few milliseconds for thousands of freed connections). On a C
library without ``malloc_trim`` (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

log = logging.getLogger(__name__)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system (glibc ``malloc_trim(0)``); False when the C
    library has no such call."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@dataclass
class MemoryReclaimer:
    """Decides when to give freed connection memory back, from a count of closed connections.

    ``tick(closed)`` is called periodically with the total number of connections closed so far
    (established ones and those dropped in their handshake); it releases free memory when at
    least ``min_closed`` have closed since the last release, so a steady fleet costs nothing and
    a burst is given back within one tick of closing."""

    min_closed: int = 64
    release: Callable[[], bool] | None = None  # None: release_free_memory
    _last: int = 0
    releases: int = 0

    def __post_init__(self) -> None:
        _malloc_trim()  # look the C call up now, not in the middle of serving

    def tick(self, closed: int) -> bool:
        if closed - self._last < self.min_closed:
            return False
        self._last = closed
        if not (self.release or release_free_memory)():
            return False
        self.releases += 1
        return True

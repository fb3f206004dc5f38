"""Aggregates that stay current as items come and go, for :mod:`modelfleet.core.tally`.

* :class:`SortedWeights`: a multiset of ``(value, weight)`` pairs that answers the
  request-weighted 95th percentile (exactly what :func:`~modelfleet.core.gates.weighted_p95`
  gives for the same pairs) and the maximum, in O(√n) per change and per question, instead of
  sorting every sample on every tick.
* :class:`Window`: a multiset of timed items and the aggregate of those that are *fresh* at a
  moment (``time > now - age``). Time-based rules (a health report goes stale, a gateway goes
  silent) depend on ``now``, not on an event: each item is counted when added and, once the
  moment passes its time plus ``age``, taken out by :meth:`Window.advance` from a heap ordered by
  time, so moving ``now`` forward costs what expires, not the size of the window. A ``now``
  earlier than the last one cannot be answered this way: :meth:`Window.advance` says so and the
  owner rebuilds from the source (the answers are exact either way).

Pure: times are plain floats (Unix seconds) handed in by the caller; no clock is read.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, insort
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

_BLOCK = 512


class SortedWeights:
    """A multiset of ``(value, weight)`` pairs: weighted percentile and maximum (module doc)."""

    __slots__ = ("_blocks", "_bn", "_bw", "_maxes", "_values", "count", "weight")

    def __init__(self) -> None:
        self._blocks: list[list[float]] = []  # sorted distinct values, in blocks
        self._maxes: list[float] = []  # the last value of each block
        self._bn: list[int] = []  # pairs per block
        self._bw: list[int] = []  # weight per block
        self._values: dict[float, list[int]] = {}  # value -> [pairs, weight]
        self.count = 0
        self.weight = 0

    def add(self, value: float, weight: int) -> None:
        """Add one pair (a negative weight counts as 0, as in ``weighted_p95``)."""
        weight = max(weight, 0)
        self.count += 1
        self.weight += weight
        entry = self._values.get(value)
        if not self._blocks:
            self._blocks.append([value])
            self._maxes.append(value)
            self._bn.append(0)
            self._bw.append(0)
        i = min(bisect_left(self._maxes, value), len(self._blocks) - 1)
        self._bn[i] += 1
        self._bw[i] += weight
        if entry is not None:
            entry[0] += 1
            entry[1] += weight
            return
        self._values[value] = [1, weight]
        block = self._blocks[i]
        if block != [value]:
            insort(block, value)
        self._maxes[i] = block[-1]
        if len(block) > 2 * _BLOCK:
            self._split(i)

    def remove(self, value: float, weight: int) -> None:
        """Remove one pair that was added."""
        weight = max(weight, 0)
        entry = self._values[value]
        self.count -= 1
        self.weight -= weight
        entry[0] -= 1
        entry[1] -= weight
        i = bisect_left(self._maxes, value)
        self._bn[i] -= 1
        self._bw[i] -= weight
        if entry[0]:
            return
        del self._values[value]
        block = self._blocks[i]
        del block[bisect_left(block, value)]
        if block:
            self._maxes[i] = block[-1]
        else:
            for column in (self._blocks, self._maxes, self._bn, self._bw):
                del column[i]

    def _split(self, i: int) -> None:
        block = self._blocks[i]
        tail = block[_BLOCK:]
        del block[_BLOCK:]
        sums = [sum(self._values[v][k] for v in tail) for k in (0, 1)]
        self._blocks.insert(i + 1, tail)
        self._maxes[i] = block[-1]
        self._maxes.insert(i + 1, tail[-1])
        self._bn[i] -= sums[0]
        self._bw[i] -= sums[1]
        self._bn.insert(i + 1, sums[0])
        self._bw.insert(i + 1, sums[1])

    def maximum(self) -> float | None:
        """The highest value (``None``: empty)."""
        return self._maxes[-1] if self._maxes else None

    def percentile(self, q: float = 0.95) -> float | None:
        """The smallest value at which the running weight (by value order) reaches ``q`` of the
        total; by count when every weight is 0 (``None``: empty)."""
        if not self.count:
            return None
        by_count = self.weight == 0
        threshold = q * (self.count if by_count else self.weight)
        k = 0 if by_count else 1
        running = 0
        sums = self._bn if by_count else self._bw
        for block, total in zip(self._blocks, sums, strict=True):
            if running + total < threshold:
                running += total
                continue
            for value in block:
                running += self._values[value][k]
                if running >= threshold:
                    return value
        return self._maxes[-1]


class Aggregate(Protocol):
    """What a :class:`Window` keeps for its fresh items."""

    def add(self, payload: Hashable) -> None: ...

    def remove(self, payload: Hashable) -> None: ...


class Count:
    """The aggregate of a window that only counts."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def add(self, payload: Hashable) -> None:
        self.n += 1

    def remove(self, payload: Hashable) -> None:
        self.n -= 1


_seq = itertools.count()
_NEVER = float("-inf")


A = TypeVar("A", bound=Aggregate)


class Window(Generic[A]):
    """Timed items; ``agg`` aggregates those with ``time > now - age`` (module docstring)."""

    __slots__ = ("_cut", "_dead", "_gone", "_heap", "_heaped", "age", "agg")

    def __init__(self, age: float, agg: A) -> None:
        self.age = age
        self.agg = agg
        self._cut = _NEVER
        self._heap: list[tuple[float, int, Hashable]] = []
        self._gone: dict[tuple[float, Hashable], int] = {}
        self._dead = 0
        self._heaped = True

    def add(self, at: float, payload: Hashable = None) -> None:
        """Add an item of time ``at`` (counted unless already stale)."""
        if at > self._cut:
            self.agg.add(payload)
            if self._cut == _NEVER:  # filling a new window: one heapify when first advanced
                self._heap.append((at, next(_seq), payload))
                self._heaped = False
            else:
                heapq.heappush(self._heap, (at, next(_seq), payload))

    def remove(self, at: float, payload: Hashable = None) -> None:
        """Remove an item that was added with the same time and payload."""
        if at <= self._cut:
            return  # already out of the aggregate, and of the heap
        self.agg.remove(payload)
        key = (at, payload)
        self._gone[key] = self._gone.get(key, 0) + 1
        self._dead += 1
        if self._dead > 256 and 2 * self._dead > len(self._heap):
            self._compact()

    def advance(self, now: float) -> bool:
        """Take out what is stale at ``now``; False if ``now`` is earlier than the last moment
        (nothing changed: the owner must rebuild the window)."""
        cut = now - self.age
        if cut < self._cut:
            return False
        self._cut = cut
        if not self._heaped:
            heapq.heapify(self._heap)
            self._heaped = True
        heap, gone = self._heap, self._gone
        while heap and heap[0][0] <= cut:
            at, _, payload = heapq.heappop(heap)
            key = (at, payload)
            dead = gone.get(key)
            if dead:
                self._dead -= 1
                if dead == 1:
                    del gone[key]
                else:
                    gone[key] = dead - 1
                continue
            self.agg.remove(payload)
        return True

    def _compact(self) -> None:
        gone = self._gone
        kept = []
        for entry in self._heap:
            key = (entry[0], entry[2])
            dead = gone.get(key)
            if dead:
                if dead == 1:
                    del gone[key]
                else:
                    gone[key] = dead - 1
                continue
            kept.append(entry)
        heapq.heapify(kept)
        self._heap = kept
        self._heaped = True
        self._dead = 0

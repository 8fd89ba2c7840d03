"""The last model steps of one channel with their times: what an alarm's reason shows
of the moment it was raised (alarms/reason.py)."""

from __future__ import annotations


class RecentSteps:
    """A ring of the last ``capacity`` (time, value) pairs. ``push`` stores two floats
    into preallocated lists (nothing allocated); ``copy`` builds tuples, oldest first,
    and runs only when an alarm is raised."""

    __slots__ = ("_count", "_head", "_ts", "_values")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._ts = [0.0] * capacity
        self._values = [0.0] * capacity
        self._head = 0
        """Where the next pair goes."""
        self._count = 0

    def push(self, ts: float, value: float) -> None:
        head = self._head
        self._ts[head] = ts
        self._values[head] = value
        head += 1
        self._head = 0 if head == len(self._ts) else head
        if self._count < len(self._ts):
            self._count += 1

    def copy(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(times, values), oldest first."""
        n, head = self._count, self._head
        start = head - n
        if start >= 0:
            return tuple(self._ts[start:head]), tuple(self._values[start:head])
        return (
            tuple(self._ts[start:] + self._ts[:head]),
            tuple(self._values[start:] + self._values[:head]),
        )

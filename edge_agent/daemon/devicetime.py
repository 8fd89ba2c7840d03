"""The time channel health is judged on: the readings' own clock, run on between them."""

from __future__ import annotations

from collections.abc import Callable, Iterable


class DeviceTime:
    """``now(stamps)``: the newest timestamp the pipeline has accepted plus the time since
    it was first seen; the clock itself before any.

    "Stale" means no reading for N seconds of the readings' time. A source stamping lines
    on receipt gives the wall clock (within a tick); a device sending its own time gives
    that time even when it is off from ours (a skewed clock, a replay, a fast-forwarded
    simulator), so a healthy stream is never stale because its clock differs, and a
    silent one becomes stale N seconds after its last reading, measured on our clock.
    The stamps are the channels' last accepted readings, not what a source has read: a
    source reads ahead of the pipeline by a batch.
    """

    __slots__ = ("_clock", "_newest", "_seen_at", "_stamps")

    def __init__(
        self,
        clock: Callable[[], float],
        stamps: Callable[[], Iterable[float | None]] | None = None,
    ) -> None:
        """stamps: where ``now()`` without arguments reads the newest stamps (so that
        ``now`` is a clock for code that takes one, e.g. the twin's OTA guard)."""
        self._clock = clock
        self._stamps = stamps
        self._newest: float | None = None
        self._seen_at = 0.0

    def now(self, stamps: Iterable[float | None] | None = None) -> float:
        wall = self._clock()
        if stamps is None:
            stamps = self._stamps() if self._stamps is not None else ()
        newest = max((ts for ts in stamps if ts is not None), default=None)
        if newest is not None and (self._newest is None or newest > self._newest):
            self._newest, self._seen_at = newest, wall
        if self._newest is None:
            return wall
        return self._newest + (wall - self._seen_at)

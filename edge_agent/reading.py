"""The unit of data that flows from a source into the pipeline."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one channel.

    ts: UNIX time in seconds (UTC, float) as stamped by the source (the device's own
        timestamp when the line carries one, else the time the line was received).
    channel: the configured channel name.
    value: in the channel's units, after the source's scale and offset.
    """

    ts: float
    channel: str
    value: float

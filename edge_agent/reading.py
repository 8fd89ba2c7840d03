"""The unit of data that flows from a source into the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

MAX_FUTURE_S = 86_400.0
"""A reading stamped more than this (seconds) ahead of this machine's clock is not data
but a corrupted device clock (1.8e14 is the year 5.7 million): the line sources refuse
it (``timestamps_invalid``) before it becomes their reference for "backwards", and
cleaning rejects it (``time_implausible``) before it becomes the store's data time, from
which retention counts the age limit back."""


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__,
# which costs about twice the whole construction of a plain slotted one, once per reading
# of every source. Nothing changes a reading after its source made it.
@dataclass(slots=True)
class Reading:
    """One value of one channel (treat as immutable: it is shared, never changed).

    ts: UNIX time in seconds (UTC, float) as stamped by the source (the device's own
        timestamp when the line carries one, else the time the line was received).
    channel: the configured channel name.
    value: in the channel's units, after the source's scale and offset.
    """

    ts: float
    channel: str
    value: float

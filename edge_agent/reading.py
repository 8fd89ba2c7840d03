"""The unit of data that flows from a source into the pipeline."""

from __future__ import annotations

from dataclasses import dataclass


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

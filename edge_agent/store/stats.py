"""The store's counters as one snapshot (``Store.stats``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoreStats:
    """A snapshot of the store's size and counters (counters since this Store opened)."""

    file_bytes: int
    """Main file + WAL, bytes."""
    reading_rows: int
    pending_rows: int
    """Readings buffered in memory, not yet flushed."""
    pending_summaries: int
    pending_alarm_events: int
    outbox_rows: dict[str, int]
    """Rows awaiting acknowledgement, by kind."""
    samples_added: int
    samples_rejected: int
    """Non-finite ts or value: not stored, not summarised."""
    samples_dropped: int
    """Oldest buffered readings dropped because flushes kept failing (buffer_max_rows)."""
    samples_late: int
    """Stored but not summarised: their interval had already closed."""
    outbox_added: dict[str, int]
    outbox_acked: int
    outbox_dropped: int
    """Summary rows dropped because the outbox was at outbox_max_rows."""
    readings_deleted_age: int
    readings_deleted_size: int
    summaries_deleted: int
    alarms_deleted: int
    flushes: int
    flush_failures: int
    last_flush_ts: float | None

    def to_dict(self) -> dict[str, float | int | str | None]:
        """Flat: the per-kind dicts become ``outbox_rows_<kind>`` / ``outbox_added_<kind>``."""
        flat: dict[str, float | int | str | None] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, dict):
                flat.update({f"{name}_{kind}": n for kind, n in value.items()})
            else:
                flat[name] = value
        return flat

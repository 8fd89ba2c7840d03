"""Read-only queries over flushed data: readings, summaries, alarms and their history.
Each runs under the database lock, so they are safe from any thread."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmState
from edge_agent.errors import AlarmNotFound
from edge_agent.store.alarm_log import ALARM_COLUMNS, alarm_from_row, event_from_payload
from edge_agent.store.blocks import blocks_after
from edge_agent.store.database import Database, check_limit
from edge_agent.store.summary import SUMMARY_COLUMNS, Summary, summary_from_row


@dataclass(frozen=True, slots=True)
class ReadingRow:
    """A stored reading; forecast and score are None where none was made."""

    ts: float
    channel: str
    value: float
    forecast: float | None
    score: float | None


_Row = tuple[float, int, float, float, float]


def _newest(
    conn: sqlite3.Connection,
    names: dict[int, str],
    channel_id: int | None,
    lower: float,
    limit: int,
) -> list[_Row]:
    """The newest ``limit`` readings (of ``channel_id``, or of all) at or after
    ``lower``, oldest first, ties by channel id. Blocks come newest ts_last first; once
    ``limit`` readings are held, a block whose ts_last is below the oldest of them
    cannot hold a newer one, so the walk stops there."""
    held: list[_Row] = []
    for ts_last, block in blocks_after(conn, math.nextafter(lower, -math.inf), True):
        if len(held) >= limit and ts_last < held[-limit][0]:
            break
        keep = block.ts >= lower
        if channel_id is not None:
            keep &= block.channel_id == channel_id
        columns = (block.ts, block.channel_id, block.value, block.forecast, block.score)
        held += zip(*(column[keep].tolist() for column in columns), strict=True)
        held.sort(key=lambda r: (r[0], names[r[1]]))
        del held[:-limit]
    return held


class Queries:
    """What ``Store`` answers from the file; each method raises StoreUnavailable on a
    database error and ValueError for a ``limit`` below 1."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def readings(self, channel: str | None, since: float | None, limit: int) -> list[ReadingRow]:
        check_limit(limit)
        lower = -math.inf if since is None else since
        with self._db.locked() as conn:
            names = dict(conn.execute("SELECT id, name FROM channels").fetchall())
            wanted = None
            if channel is not None:
                wanted = next((cid for cid, name in names.items() if name == channel), None)
                if wanted is None:
                    return []
            found = _newest(conn, names, wanted, lower, limit)
        return [
            ReadingRow(ts, names[cid], v, None if f != f else f, None if sc != sc else sc)
            for ts, cid, v, f, sc in found
        ]

    def summaries(self, channel: str | None, since: float | None, limit: int) -> list[Summary]:
        check_limit(limit)
        lower = -math.inf if since is None else since
        with self._db.locked() as conn:
            if channel is None:
                cur = conn.execute(
                    f"SELECT c.name, {SUMMARY_COLUMNS} FROM summaries"
                    " JOIN channels c ON c.id = channel_id WHERE start >= ?"
                    " ORDER BY start DESC, c.name DESC LIMIT ?",
                    (lower, limit),
                )
            else:
                cur = conn.execute(
                    f"SELECT c.name, {SUMMARY_COLUMNS} FROM summaries"
                    " JOIN channels c ON c.id = channel_id WHERE c.name = ? AND start >= ?"
                    " ORDER BY start DESC LIMIT ?",
                    (channel, lower, limit),
                )
            found = [summary_from_row(row[0], row[1:]) for row in cur]
        found.reverse()
        return found

    def alarms(self, active_only: bool, limit: int) -> list[Alarm]:
        check_limit(limit)
        where, params = (
            ("WHERE state != ?", (AlarmState.CLEARED.value,)) if active_only else ("", ())
        )
        with self._db.locked() as conn:
            cur = conn.execute(
                f"SELECT {ALARM_COLUMNS} FROM alarms {where} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            )
            return [alarm_from_row(row) for row in cur]

    def alarm(self, alarm_id: int) -> Alarm:
        """Raises AlarmNotFound."""
        with self._db.locked() as conn:
            row = conn.execute(
                f"SELECT {ALARM_COLUMNS} FROM alarms WHERE id = ?", (alarm_id,)
            ).fetchone()
        if row is None:
            raise AlarmNotFound(alarm_id)
        return alarm_from_row(row)

    def open_alarms(self) -> list[Alarm]:
        with self._db.locked() as conn:
            cur = conn.execute(
                f"SELECT {ALARM_COLUMNS} FROM alarms WHERE state != ? ORDER BY id",
                (AlarmState.CLEARED.value,),
            )
            return [alarm_from_row(row) for row in cur]

    def alarm_events(self, alarm_id: int | None, limit: int) -> list[AlarmEvent]:
        check_limit(limit)
        with self._db.locked() as conn:
            if alarm_id is None:
                cur = conn.execute(
                    "SELECT payload FROM alarm_events ORDER BY id DESC LIMIT ?", (limit,)
                )
            else:
                cur = conn.execute(
                    "SELECT payload FROM alarm_events WHERE alarm_id = ? ORDER BY id DESC LIMIT ?",
                    (alarm_id, limit),
                )
            events = [event_from_payload(p) for (p,) in cur]
        events.reverse()
        return events

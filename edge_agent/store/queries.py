"""Read-only queries over flushed data: readings, summaries, alarms and their history.
Each runs under the database lock, so they are safe from any thread."""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmState
from edge_agent.errors import AlarmNotFound
from edge_agent.store.alarm_log import ALARM_COLUMNS, alarm_from_row, event_from_payload
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


class Queries:
    """What ``Store`` answers from the file; each method raises StoreUnavailable on a
    database error and ValueError for a ``limit`` below 1."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def readings(self, channel: str | None, since: float | None, limit: int) -> list[ReadingRow]:
        check_limit(limit)
        lower = -math.inf if since is None else since
        rows: list[ReadingRow] = []
        with self._db.locked() as conn:
            names = (
                [channel]
                if channel is not None
                else [name for (name,) in conn.execute("SELECT name FROM channels")]
            )
            # One indexed (channel_id, ts) scan per channel, newest first: all channels
            # cost a few of these, never a sort of the whole table.
            for name in names:
                cur = conn.execute(
                    "SELECT ts, value, forecast, score FROM readings"
                    " WHERE channel_id = (SELECT id FROM channels WHERE name = ?) AND ts >= ?"
                    " ORDER BY ts DESC LIMIT ?",
                    (name, lower, limit),
                )
                rows += [ReadingRow(ts, name, v, f, s) for ts, v, f, s in cur]
        if channel is None:
            rows.sort(key=lambda r: (r.ts, r.channel), reverse=True)
            del rows[limit:]
        rows.reverse()
        return rows

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

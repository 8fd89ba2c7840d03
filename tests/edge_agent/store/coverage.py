"""How many committed readings no stored summary covers: per channel and interval, the
readings in ``[start, start + interval_s)`` against the summary's ``count``. Read-only,
on a store file no process holds."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from tests.edge_agent.store.blockrows import load_readings


@dataclass(frozen=True)
class Coverage:
    readings: int
    """Committed readings."""
    uncovered: int
    """Of those, readings that no summary counts."""
    overcounted: int
    """Summary counts beyond the readings of their interval (a reading counted twice)."""


def summary_coverage(path: Path) -> Coverage:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        readings = load_readings(conn)
        covered = over = 0
        for cid, start, interval, count in conn.execute(
            "SELECT channel_id, start, interval_s, count FROM summaries"
        ).fetchall():
            (n,) = conn.execute(
                "SELECT count(*) FROM readings WHERE channel_id = ? AND ts >= ? AND ts < ?",
                (cid, start, start + interval),
            ).fetchone()
            covered += min(n, count)
            over += max(0, count - n)
    return Coverage(readings, readings - covered, over)

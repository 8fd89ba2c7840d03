"""The readings of a store file as a TEMP table ``readings`` (ts, channel_id, value,
forecast, score; NULL where none), decoded from its blocks: the tests that check the
file itself then ask SQL questions of the readings, row per reading."""

from __future__ import annotations

import math
import sqlite3

from edge_agent.store.blocks import blocks_after


def load_readings(conn: sqlite3.Connection) -> int:
    """Create (or refill) TEMP table ``readings``; returns the readings loaded."""
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS readings"
        " (ts REAL, channel_id INTEGER, value REAL, forecast REAL, score REAL)"
    )
    conn.execute("DELETE FROM temp.readings")
    n = 0
    for _, block in blocks_after(conn, -math.inf):
        columns = (block.ts, block.channel_id, block.value, block.forecast, block.score)
        rows = [
            (t, c, v, None if f != f else f, None if s != s else s)
            for t, c, v, f, s in zip(*(col.tolist() for col in columns), strict=True)
        ]
        conn.executemany("INSERT INTO temp.readings VALUES (?, ?, ?, ?, ?)", rows)
        n += len(rows)
    return n

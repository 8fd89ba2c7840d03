"""Readings stored as compressed blocks: one row per flush (at most BLOCK_MAX_ROWS
readings of any channels), not one row per reading.

Why: SD cards wear with every byte written, and SQLite writes whole pages. A row per
reading cost 14 WAL pages per 10 s flush at 4 channels × 10 Hz (a leaf of the table and
of its index per few dozen rows, plus the tree above); one block of the same 400
readings costs about five (docs/store.md#write-rate). Deleting by age or size removes a
handful of block rows instead of thousands of readings.

A block is the five columns of its readings, each as little-endian fixed-width values
(ts, value, forecast, score as float64 with NaN for "none", channel id as uint16),
byte-shuffled (byte 0 of every value, then byte 1, ...: neighbouring readings share their
high bytes, which is what makes floats compress) and deflated. Values come back bit for
bit. ``ts_first``/``ts_last`` are the block's smallest and largest reading times.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_agent.store.errors import StoreUnreadable

BLOCK_MAX_ROWS = 4096
"""Readings per block at most: a flush after an outage is split, so that reading one
back never decodes more than this."""
FORMAT = 1
"""The first byte of every block's data."""
_DEFLATE_LEVEL = 6
_FLOAT = np.dtype("<f8")
_CHANNEL = np.dtype("<u2")
MAX_CHANNEL_ID = 65_535

Column = Sequence[float] | npt.NDArray[Any]
"""A column of readings: the writer's arrays, or numpy when a block is rewritten."""


@dataclass(frozen=True, slots=True)
class Block:
    """One block's readings as columns (numpy arrays of one length)."""

    ts: npt.NDArray[np.float64]
    channel_id: npt.NDArray[np.uint16]
    value: npt.NDArray[np.float64]
    forecast: npt.NDArray[np.float64]
    """NaN where the reading had no forecast."""
    score: npt.NDArray[np.float64]
    """NaN where the reading had no score."""

    def __len__(self) -> int:
        return len(self.ts)


def _shuffle(raw: bytes, width: int) -> bytes:
    return np.frombuffer(raw, np.uint8).reshape(-1, width).T.tobytes()


def _unshuffle(raw: bytes, width: int) -> bytes:
    return np.frombuffer(raw, np.uint8).reshape(width, -1).T.tobytes()


def encode(
    ts: Column,
    channel_id: Sequence[int] | npt.NDArray[Any],
    value: Column,
    forecast: Column,
    score: Column,
) -> bytes:
    """The data of a block of these readings (columns of one length, at least one)."""
    n = len(ts)
    parts = [bytes([FORMAT]), n.to_bytes(4, "little")]
    body = b"".join(
        (
            _shuffle(np.asarray(ts, _FLOAT).tobytes(), 8),
            _shuffle(np.asarray(channel_id, _CHANNEL).tobytes(), 2),
            _shuffle(np.asarray(value, _FLOAT).tobytes(), 8),
            _shuffle(np.asarray(forecast, _FLOAT).tobytes(), 8),
            _shuffle(np.asarray(score, _FLOAT).tobytes(), 8),
        )
    )
    parts.append(zlib.compress(body, _DEFLATE_LEVEL))
    return b"".join(parts)


def decode(data: bytes, block_id: int) -> Block:
    """The readings of a block's data. Raises StoreUnreadable naming the block when the
    data is not a block this code wrote."""
    if len(data) < 5 or data[0] != FORMAT:
        raise StoreUnreadable(f"reading block {block_id}: unknown format")
    n = int.from_bytes(data[1:5], "little")
    try:
        body = zlib.decompress(data[5:])
    except zlib.error as exc:
        raise StoreUnreadable(f"reading block {block_id}: {exc}") from exc
    if len(body) != n * (4 * 8 + 2):
        raise StoreUnreadable(f"reading block {block_id}: {len(body)} bytes for {n} readings")
    at = 0

    def column(dtype: np.dtype[np.generic]) -> npt.NDArray[np.generic]:
        nonlocal at
        size = n * dtype.itemsize
        raw = _unshuffle(body[at : at + size], dtype.itemsize)
        at += size
        return np.frombuffer(raw, dtype)

    ts = column(_FLOAT)
    cid = column(_CHANNEL)
    value, forecast, score = column(_FLOAT), column(_FLOAT), column(_FLOAT)
    return Block(ts, cid, value, forecast, score)  # type: ignore[arg-type]


def insert_blocks(
    conn: sqlite3.Connection,
    ts: Sequence[float],
    channel_id: Sequence[int],
    value: Sequence[float],
    forecast: Sequence[float],
    score: Sequence[float],
) -> int:
    """Write these readings as blocks of at most BLOCK_MAX_ROWS; returns the blocks
    written. Raises sqlite3.Error."""
    written = 0
    for lo in range(0, len(ts), BLOCK_MAX_ROWS):
        hi = lo + BLOCK_MAX_ROWS
        part_ts = ts[lo:hi]
        data = encode(part_ts, channel_id[lo:hi], value[lo:hi], forecast[lo:hi], score[lo:hi])
        conn.execute(
            "INSERT INTO reading_blocks (ts_first, ts_last, n, data) VALUES (?, ?, ?, ?)",
            (min(part_ts), max(part_ts), len(part_ts), data),
        )
        written += 1
    return written


def blocks_after(
    conn: sqlite3.Connection, after: float, newest_first: bool = False
) -> Iterator[tuple[float, Block]]:
    """(ts_last, block) of every block holding a reading later than ``after``, in
    write order (oldest first) or by ts_last, newest first. Raises sqlite3.Error,
    StoreUnreadable."""
    order = "ts_last DESC, id DESC" if newest_first else "id"
    cur = conn.execute(
        f"SELECT id, ts_last, data FROM reading_blocks WHERE ts_last > ? ORDER BY {order}",
        (after,),
    )
    for block_id, ts_last, data in cur:
        yield float(ts_last), decode(data, int(block_id))


def trim_block(conn: sqlite3.Connection, block_id: int, drop: npt.NDArray[np.bool_]) -> int:
    """Rewrite block ``block_id`` without the readings ``drop`` marks (deleting it when
    none remain); returns the readings dropped. Raises sqlite3.Error, StoreUnreadable."""
    (data,) = conn.execute("SELECT data FROM reading_blocks WHERE id = ?", (block_id,)).fetchone()
    block = decode(data, block_id)
    keep = ~drop
    kept = int(keep.sum())
    if kept == 0:
        conn.execute("DELETE FROM reading_blocks WHERE id = ?", (block_id,))
    elif kept < len(block):
        ts = block.ts[keep]
        conn.execute(
            "UPDATE reading_blocks SET ts_first = ?, ts_last = ?, n = ?, data = ? WHERE id = ?",
            (
                float(ts.min()),
                float(ts.max()),
                kept,
                encode(
                    ts,
                    block.channel_id[keep],
                    block.value[keep],
                    block.forecast[keep],
                    block.score[keep],
                ),
                block_id,
            ),
        )
    return len(block) - kept


def block_times(conn: sqlite3.Connection, block_id: int) -> npt.NDArray[np.float64]:
    """The reading times of block ``block_id``, in write order."""
    (data,) = conn.execute("SELECT data FROM reading_blocks WHERE id = ?", (block_id,)).fetchone()
    return decode(data, block_id).ts

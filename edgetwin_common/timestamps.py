"""Timestamps as users write them: ISO 8601 or UNIX seconds, one parser for every reader
(replay CSVs, datasets, command-line options, benchmarks)."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def parse_timestamp(text: str) -> float | None:
    """UNIX seconds (UTC) from ISO 8601 (naive means UTC) or from a number of UNIX
    seconds; None when it is neither, or not finite."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if math.isfinite(value) else None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()

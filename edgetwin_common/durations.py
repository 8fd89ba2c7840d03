"""Durations as an operator reads them: "30 s", "16 min", "2.5 h", "3 d"."""

from __future__ import annotations

import math


def duration_text(seconds: float) -> str:
    """``seconds`` (>= 0, finite) in the largest unit that keeps it readable, to three
    significant digits: 1.6 -> "1.6 s", 960 -> "16 min", 5400 -> "1.5 h"."""
    if not math.isfinite(seconds):
        return f"{seconds} s"
    for unit, size, below in (("s", 1.0, 90.0), ("min", 60.0, 5400.0), ("h", 3600.0, 172800.0)):
        if abs(seconds) < below:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds / 86400.0:.3g} d"

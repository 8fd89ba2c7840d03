"""The bench scripts import each other as top-level modules (``python bench/x.py`` puts
bench/ on the path); the tests of their importable parts do the same."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

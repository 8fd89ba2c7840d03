"""Part 3 of `edge-agent demo`: the advisor closes the loop over a real pty with a real
agent; the pump that overheats when left alone is derated before its alarm, which never
fires, and the chart is drawn."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from edgetwin_demo.advisor import run_advisor_demo
from tests.conftest import require

if not hasattr(os, "openpty"):
    require(False, "no pseudo-terminals on this OS", module=True)


def test_the_advisor_part_prevents_the_overheating_and_draws_the_chart(tmp_path: Path) -> None:
    said: list[str] = []
    demo = run_advisor_demo(tmp_path, said.append)
    limit = 75.0
    assert max(f.reported.bearing_temp for f in demo.alone) > limit
    assert demo.alarms == 0
    assert max(f.reported.bearing_temp for f in demo.frames) < limit - 2.0
    assert demo.changes >= 3 and min(f.state.load_limit for f in demo.frames) < 0.6
    text = "\n".join(said)
    assert "overheating alarm raised 0 time(s)" in text and "left alone: bearing peak" in text
    if importlib.util.find_spec("matplotlib") is not None:
        assert demo.chart is not None and demo.chart.stat().st_size > 20_000
        assert f"chart: {demo.chart}" in text

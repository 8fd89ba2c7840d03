"""Part 3 of `edge-agent demo`: the advisor closes the loop over a real pty with a real
agent; the pump that overheats when left alone is derated before its alarm, which never
fires, the twin's cross-channel alarm says why (the bearing hot for its load) after the
fault began and before the overheating would have, and the chart is drawn."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from edgetwin_demo.advisor import DURATION_S, FAULT_AT_S, run_advisor_demo
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
    # The cross-channel alarm: none in the fault-free start, the first after the fault
    # began and before the pump left alone would have raised its overheating alarm.
    overheat_s = next(
        f.t for i, f in enumerate(demo.alone)
        if all(g.reported.bearing_temp >= limit for g in demo.alone[max(0, i - 4) : i + 1])
    )  # fmt: skip
    assert demo.cross and all(at > FAULT_AT_S for at, _ in demo.cross), demo.cross
    at, message = demo.cross[0]
    assert at < overheat_s
    assert message.startswith("bearing_temp ") and "°C above what load" in message
    # On the device's clock the detector scored every twin period once the twin had its
    # 17 periods of state (the last one may end as the run stops).
    assert demo.periods >= DURATION_S // 60 - 17 - 1
    text = "\n".join(said)
    assert "cross-channel alarm at " in text and "a fault, not the load" in text
    assert "overheating alarm raised 0 time(s)" in text and "left alone: bearing peak" in text
    if importlib.util.find_spec("matplotlib") is not None:
        assert demo.chart is not None and demo.chart.stat().st_size > 20_000
        assert f"chart: {demo.chart}" in text

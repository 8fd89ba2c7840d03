"""One short real run of bench/faults.py: `edge-agent simulate` fast-forwarded on a pty,
`edge-agent run` on the example config, two faults the example must report once each."""

from __future__ import annotations

import os
from pathlib import Path

from fault_plan import Plan, Window
from faults import run_plan

from edge_agent.simulator import parse_fault
from tests.conftest import require

require(hasattr(os, "openpty"), "no pseudo-terminals on this OS", module=True)


def test_a_short_run_reports_each_fault_once_and_nothing_else(tmp_path: Path) -> None:
    stuck = parse_fault("stuck@100s:90s,channel=current")
    dropout = parse_fault("dropout@240s:15s")
    the_plan = Plan(
        seed=5,
        windows=(Window(stuck, 100.0, 190.0), Window(dropout, 240.0, 255.0)),
        duration_s=330.0,
    )
    run = run_plan(the_plan, speed=20.0, workdir=tmp_path)

    found = [[(a.rule, a.channel) for a in j.alarms] for j in run.score.judged]
    assert found == [[("sensor-stuck", "current")], [("pump-mcu-link", "current")]]
    stuck_alarm, dropout_alarm = (j.alarms[0] for j in run.score.judged)
    # The channel's stuck_after_s (60 s) after the stuck began at 100 s; times come from
    # the printed device timestamps (millisecond decimals), so allow their rounding.
    assert 160.0 - 0.01 <= stuck_alarm.raised_s < 162.0
    assert 250.0 - 0.01 <= dropout_alarm.raised_s < 254.0  # stale_after_s 10 + on_delay_s 2
    assert all(j.clear_s is not None and j.clear_s < 5.0 for j in run.score.judged)
    assert run.score.false_alarms == []
    assert (run.dropped_lines, run.queue_full) == (0, 0)

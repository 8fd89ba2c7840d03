"""bench/nab_grid.py: the declared settings grid and the offline re-scoring of a replay's
forecasts with the agent's own scorer."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nab_grid import (
    GRIDS,
    NAB_SCORE,
    SHIPPED,
    Replayed,
    build,
    place,
    read_replay,
    rescore,
    settings,
    triggers,
)

SHIPPED_TABLE = {"method": "likelihood", "hold_level": 3.0, "hold_samples": 200}


def test_the_shipped_setting_leads_and_is_not_repeated() -> None:
    grid = settings(SHIPPED_TABLE)
    sizes = [len(values) for values in GRIDS["likelihood"].values()]
    # Every combination once; the one equal to the shipped table (range_weight 4.0 is
    # its default) is the shipped setting itself.
    assert len(grid) == math.prod(sizes)
    assert grid[0].name == SHIPPED and grid[0].score == SHIPPED_TABLE
    names = [s.name for s in grid]
    assert len(set(names)) == len(names)
    assert "hold_samples=50,range_weight=8.0" in names
    assert "range_weight=4.0" not in names


def test_a_method_without_a_grid_keeps_its_shipped_setting_only() -> None:
    assert [s.name for s in settings({"method": "residual"})] == [SHIPPED]


def test_a_bad_setting_is_refused_as_the_agent_refuses_it() -> None:
    with pytest.raises(ValueError, match="short_window"):
        build({"method": "likelihood", "short_window": 0})


def stamp(i: int) -> str:
    return datetime.fromtimestamp(1_700_000_000 + 300 * i, UTC).strftime("%Y-%m-%d %H:%M:%S")


def test_rescoring_reproduces_the_scorer_row_by_row(tmp_path: Path) -> None:
    n = 600
    values = [10.0 + math.sin(i / 7) + (8.0 if i == 500 else 0.0) for i in range(n)]
    forecasts = [None if i < 40 else 10.0 + math.sin((i - 1) / 7) for i in range(n)]
    # The replay's per-sample file (--out) and its NAB result file (--nab-out); row 300
    # was rejected by cleaning: it has no model step and scores 0 in the result file.
    steps = tmp_path / "steps.csv"
    lines = ["timestamp,channel,value,forecast,forecast_h16,anomaly_score,alarm_state"]
    for i in range(n):
        if i != 300:
            made = "" if forecasts[i] is None else repr(forecasts[i])
            iso = stamp(i).replace(" ", "T") + "+00:00"
            lines.append(f"{iso},value,{values[i]!r},{made},,,")
    steps.write_text("\n".join(lines) + "\n")
    result = tmp_path / "result.csv"
    rows = [f"{stamp(i)},{values[i]!r},0" for i in range(n)]
    result.write_text("timestamp,value,anomaly_score\n" + "\n".join(rows) + "\n")

    replayed = read_replay(steps, result)
    table = {**SHIPPED_TABLE, "hold_samples": 50}
    scores = rescore(replayed, table)

    scorer = build(table)
    expected = []
    for i in range(n):
        made = forecasts[i]
        ts = 1_700_000_000.0 + 300 * i
        own = None if i == 300 or made is None else scorer.score(ts, values[i], made)
        expected.append(0.0 if own is None else own)
    assert scores == expected
    assert scores[500] >= 3.0  # the jump is caught
    assert isinstance(replayed, Replayed) and len(replayed.nab_rows) == n


def test_after_the_swap_a_period_step_is_written_on_the_next_reading() -> None:
    # Readings every 300 s at 120 s past the period; the release swapped in at row 2 runs
    # on 300 s periods aligned to multiples of 300: the period starting at 600 holds the
    # reading at 720 and is closed (run) by the reading at 1020.
    times = [120.0 + 300 * i for i in range(6)]
    rows = [[datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S"), "1", "0"] for t in times]
    steps = [120.0, 420.0, 600.0, 900.0, 1200.0]
    replayed = Replayed(steps, [1.0] * 5, [1.0] * 5, rows)

    runs_at = triggers(replayed, update_row=2)

    assert runs_at == [0, 1, 3, 4, 5]
    placed = place(replayed, [1.0, 2.0, 3.0, 4.0, 5.0], runs_at, update_row=2)
    # Row 2 runs no step: the agent writes its channel's last score again.
    assert placed == [1.0, 2.0, 2.0, 3.0, 4.0, 5.0]
    # Without a swap each step runs at the reading of its own time; a reading without
    # one was rejected by cleaning and scores 0.
    direct = Replayed([120.0, 420.0, 1020.0], [1.0] * 3, [1.0] * 3, rows)
    runs_at = triggers(direct, update_row=None)
    assert runs_at == [0, 1, 3]
    assert place(direct, [1.0, 2.0, 3.0], runs_at, None) == [1.0, 2.0, 0.0, 3.0, 0.0, 0.0]


def test_the_nab_detector_has_a_declared_grid_around_its_shipped_setting() -> None:
    grid = settings(NAB_SCORE)
    assert grid[0].name == SHIPPED and grid[0].score == NAB_SCORE
    assert len(grid) == math.prod(len(v) for v in GRIDS["ensemble"].values())
    assert all(build(s.score).is_warm is False for s in grid)

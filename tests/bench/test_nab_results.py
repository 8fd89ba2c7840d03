"""bench/nab.py reads any directory in NAB's layout and lines result rows up with data rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nab import load_results, shipped_threshold
from nab_grid import NAB_SCORE


def write(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def stamp(i: int) -> str:
    return f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00"


def test_results_line_up_with_data_rows_and_labels(tmp_path: Path) -> None:
    data, results = tmp_path / "data", tmp_path / "results"
    n = 100
    write(data / "cat" / "f.csv", ["timestamp,value"] + [f"{stamp(i)},{i}" for i in range(n)])
    # Row 30's time went back on the device (its reader skipped it): no result row.
    kept = [i for i in range(n) if i != 30]
    write(
        results / "cat" / "f.csv",
        ["timestamp,value,anomaly_score"] + [f"{stamp(i)},{i},{i / 100}" for i in kept],
    )
    labels = tmp_path / "windows.json"
    labels.write_text(json.dumps({"cat/f.csv": [[stamp(50) + ".000000", stamp(59) + ".000000"]]}))

    [(series, scores)] = load_results(data, labels, results)

    assert series.name == "cat/f.csv" and series.rows == n
    assert series.windows == [(50, 59)]  # label times with microseconds match the rows
    assert scores[29] == 0.29 and scores[30] == 0.0 and scores[31] == 0.31


def test_results_out_of_step_with_the_data_are_refused(tmp_path: Path) -> None:
    data, results = tmp_path / "data", tmp_path / "results"
    write(data / "cat" / "f.csv", ["timestamp,value"] + [f"{stamp(i)},1" for i in range(10)])
    write(results / "cat" / "f.csv", ["timestamp,value,anomaly_score", f"{stamp(20)},1,0"])
    labels = tmp_path / "windows.json"
    labels.write_text("{}")
    with pytest.raises(SystemExit, match="matches no data row"):
        load_results(data, labels, results)


def test_the_fixed_threshold_is_the_detectors_hold_level() -> None:
    assert shipped_threshold() == NAB_SCORE["hold_level"]

"""bench/faults.py's scoring on hand-made alarm lists with known answers, its seed
argument, its rewrite of the example config and the schedules it draws."""

from __future__ import annotations

import argparse
import math
import tomllib
from pathlib import Path

import pytest
from fault_plan import (
    GRACE_S,
    PERMANENT,
    RATE_HZ,
    Raised,
    Window,
    false_per_device_day,
    figures,
    plan,
    score,
)
from faults import bench_config, seeds_argument

from edge_agent.config import parse_config
from edge_agent.simulator import FaultKind, parse_fault

DAY = 86400.0


def window(spec: str, start: float, end: float | None, crossing: float | None = None) -> Window:
    return Window(parse_fault(spec), start, end, crossing)


OVERHEAT = window("overheat@1000s:600s,rate=1", 1000.0, 1600.0, crossing=1500.0)
DROPOUT = window("dropout@3000s:30s", 3000.0, 3030.0)
SPIKE = window("spike@5000s,channel=vibration", 5000.0, 5000.1)
WEAR = window("wear@7000s:300s,rate=0.5", 7000.0, None, crossing=7200.0)
WINDOWS = (OVERHEAT, DROPOUT, SPIKE, WEAR)


def test_a_hand_made_alarm_list_scores_as_worked_out() -> None:
    alarms = [
        Raised("bearing-hot-predicted", "bearing_temp", 1100.0, 1700.0),  # 400 s before
        Raised("bearing-hot", "bearing_temp", 1500.0, 1690.0),
        Raised("pump-mcu-link", "current", 2999.5, 3030.5),  # stamped with the last reading
        Raised("anomaly", "vibration", 2000.0, 2060.0),  # in no window: false
        Raised("vibration-high", "vibration", 7250.0, None),  # permanent fault: stays
        Raised("anomaly", "current", 3030.0 + GRACE_S + 1.0, 3200.0),  # after the grace
    ]
    result = score(WINDOWS, alarms, duration_s=DAY)

    overheat, dropout, spike, wear = result.judged
    assert [a.rule for a in overheat.alarms] == ["bearing-hot-predicted", "bearing-hot"]
    assert overheat.lead_s == 400.0
    assert overheat.clear_s == 100.0  # the later of the two clears, after the end at 1600
    assert dropout.detected and dropout.clear_s == 0.5
    assert not spike.detected and spike.clear_s is None
    assert wear.lead_s == -50.0 and wear.clear_s is None  # permanent: no clear time
    assert [(a.rule, a.raised_s) for a in result.false_alarms] == [
        ("anomaly", 2000.0),
        ("anomaly", 3151.0),
    ]
    # Fault-free time: the day less each window (+ grace; the permanent one to the end).
    inside = (600 + GRACE_S) + (30 + GRACE_S) + (0.1 + GRACE_S) + (DAY - 7000)
    assert result.outside_s == pytest.approx(DAY - inside)
    assert false_per_device_day([result]) == pytest.approx(2 / (result.outside_s / DAY))

    rows = {f.kind: f for f in figures([result])}
    assert (rows["overheat"].detected, rows["overheat"].alarms_median) == (1, 2)
    assert rows["spike"].detected == 0
    assert rows["wear"].clearable == 0
    assert (rows["all"].faults, rows["all"].detected) == (4, 3)
    assert rows["all"].alarms_median == 1.0  # of 2, 1, 0, 1
    assert (rows["all"].cleared_in_time, rows["all"].clearable) == (2, 2)


def test_an_alarm_belongs_to_the_latest_fault_begun() -> None:
    # After a permanent wear, a later fault's alarm is that fault's, not the wear's.
    stuck = window("stuck@8000s:300s,channel=current", 8000.0, 8300.0)
    result = score((WEAR, stuck), [Raised("sensor-stuck", "current", 8060.0, 8300.0)], DAY)
    assert [len(j.alarms) for j in result.judged] == [0, 1]


def test_an_alarm_that_never_clears_is_never_cleared() -> None:
    result = score((DROPOUT,), [Raised("pump-mcu-link", "current", 3012.0, None)], DAY)
    assert result.judged[0].clear_s == math.inf
    assert figures([result])[0].cleared_in_time == 0


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("3", [0, 1, 2]), ("100-103", [100, 101, 102, 103]), ("5,8-9", [0, 1, 2, 3, 4, 8, 9])],
)
def test_seeds_are_a_count_a_range_or_a_list(text: str, seeds: list[int]) -> None:
    assert seeds_argument(text) == seeds


@pytest.mark.parametrize("text", ["0", "9-3", "a-b", "1-"])
def test_bad_seeds_are_refused_saying_why(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="--seeds"):
        seeds_argument(text)


def test_the_bench_config_is_the_example_with_only_paths_ports_and_the_time_field(
    tmp_path: Path,
) -> None:
    example = tomllib.loads((Path(__file__).parents[2] / "examples/agent.toml").read_text())
    text = bench_config(tmp_path, tmp_path / "pump0", 18080)
    parse_config(text, "bench.toml")  # valid as the agent reads it
    bench = tomllib.loads(text)
    assert bench["alarms"] == example["alarms"]
    assert bench["channels"] == example["channels"]
    assert bench["channel_defaults"] == example["channel_defaults"]
    source = bench["sources"][0]
    assert source["port"] == str(tmp_path / "pump0")
    assert (source["timestamp_field"], source["csv_fields"][0]) == ("ts", "ts")
    assert bench["http"]["port"] == 18080


def test_a_schedule_has_every_kind_once_apart_with_the_permanent_ones_last() -> None:
    drawn = plan(11, hot_c=85.0, vibration_high=4.5)
    kinds = [w.kind for w in drawn.windows]
    assert sorted(kinds) == sorted(FaultKind)
    assert set(kinds[-2:]) == set(PERMANENT)
    for before, after in zip(drawn.windows, drawn.windows[1:], strict=False):
        end = before.fault.end_sample(RATE_HZ)
        assert end is not None and after.start_s - end / RATE_HZ >= 300.0
    for w in drawn.windows:  # the levels are crossed while the fault lasts
        if w.crossing_s is not None:
            assert w.start_s < w.crossing_s
    assert plan(11, 85.0, 4.5) == drawn  # seeded

"""The pure generator: determinism, physics couplings, fault ground truth, line formats
(cross-checked with the real parser)."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter

import pytest

from edge_agent.simulator import (
    CHANNELS,
    FaultKind,
    SimulatorSettings,
    SimulatorSettingsInvalid,
    format_line,
    generate_series,
    parse_fault,
    serial_config_for,
)
from edge_agent.simulator.pump import FIELD_DECIMALS, iter_frames
from edge_agent.sources.lineproto import LINE_OUTCOMES, LineAssembler, LineDecoder, LineFormat


def settings(*faults: str, **kw: object) -> SimulatorSettings:
    return SimulatorSettings(faults=tuple(parse_fault(f) for f in faults), **kw)  # type: ignore[arg-type]


def series(*faults: str, seconds: float = 600.0, **kw: object) -> list:  # type: ignore[type-arg]
    return generate_series(settings(*faults, rate_hz=1.0, **kw), seconds)


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = [f.line for f in series(seed=1, seconds=100)]
    assert a == [f.line for f in series(seed=1, seconds=100)]
    assert a != [f.line for f in series(seed=2, seconds=100)]


def test_frames_are_on_the_sample_grid() -> None:
    frames = generate_series(SimulatorSettings(rate_hz=50.0), 2.0)
    assert len(frames) == 100
    assert [f.index for f in frames] == list(range(100))
    assert frames[10].t == pytest.approx(0.2)


def test_duration_ends_the_generator() -> None:
    assert len(list(iter_frames(SimulatorSettings(rate_hz=10.0, duration_s=1.25)))) == 13


def test_a_faulted_run_matches_the_clean_run_until_the_fault() -> None:
    clean = series(seconds=300)
    faulted = series("overheat@120s", "wear@150s", "garbage@200s", seconds=300)
    assert [f.line for f in clean[:120]] == [f.line for f in faulted[:120]]
    assert clean[120].line != faulted[121].line or clean[121] != faulted[121]


def test_values_are_physically_plausible() -> None:
    frames = series(seconds=3600)
    for name, low, high in [
        ("bearing_temp", 35.0, 80.0),
        ("vibration", 0.8, 4.0),
        ("current", 7.0, 22.0),
        ("ambient", 15.0, 30.0),
    ]:
        values = [getattr(f.reported, name) for f in frames]
        assert low < min(values) and max(values) < high, name
    assert all(0.15 <= f.load <= 1.0 for f in frames)


def test_load_drives_current_and_heat_with_thermal_lag() -> None:
    frames = series(seconds=3600)
    loads = [f.load for f in frames]
    current = [f.truth.current for f in frames]
    assert statistics.correlation(loads, current) > 0.99
    heat = [f.truth.bearing_temp - f.truth.ambient for f in frames]
    # Heat follows load with a lag: better correlated with the load some minutes back.
    lag = 300
    now = statistics.correlation(loads[lag:], heat[lag:])
    earlier = statistics.correlation(loads[:-lag], heat[lag:])
    assert earlier > now


def test_overheat_starts_exactly_at_its_onset_and_keeps_rising() -> None:
    clean = series(seconds=1800)
    hot = series("overheat@600s,rate=2", seconds=1800)
    excess = [h.truth.bearing_temp - c.truth.bearing_temp for h, c in zip(hot, clean, strict=True)]
    assert all(e == 0 for e in excess[:601])  # onset sample 600 adds 0 heat yet
    assert all(b > a for a, b in itertools.pairwise(excess[601:]))
    assert 10.0 < excess[-1] < 2.0 * 20  # 20 min at 2 °C/min, lagging behind the target
    assert FaultKind.OVERHEAT not in clean[700].active
    assert FaultKind.OVERHEAT in hot[700].active and FaultKind.OVERHEAT not in hot[599].active


def test_wear_raises_vibration_and_stays() -> None:
    clean = series(seconds=1200)
    worn = series("wear@300s:300s,rate=1", seconds=1200)
    delta = [w.truth.vibration - c.truth.vibration for w, c in zip(worn, clean, strict=True)]
    assert delta[300] == 0
    assert delta[600] == pytest.approx(5.0)  # 5 min at 1 mm/s per min
    assert delta[-1] == pytest.approx(5.0)  # wear is permanent
    assert worn[-1].truth.current > clean[-1].truth.current


def test_drift_moves_the_reading_not_the_truth_and_stays() -> None:
    clean = series(seconds=1200)
    drifted = series("drift@300s:300s,channel=ambient,rate=0.5", seconds=1200)
    offset = [d.reported.ambient - c.reported.ambient for d, c in zip(drifted, clean, strict=True)]
    assert offset[300] == 0
    assert offset[450] == pytest.approx(1.25)  # 150 s at 0.5 °C per min
    assert offset[600] == pytest.approx(2.5)
    assert offset[-1] == pytest.approx(2.5)  # the offset reached stays
    assert all(d.truth == c.truth for d, c in zip(drifted, clean, strict=True))
    assert drifted[-1].reported.bearing_temp == clean[-1].reported.bearing_temp


def test_spike_is_one_sample() -> None:
    clean = series(seconds=60)
    spiked = series("spike@30s,channel=vibration,size=6", seconds=60)
    diffs = [
        s.reported.vibration - c.reported.vibration for s, c in zip(spiked, clean, strict=True)
    ]
    assert [i for i, d in enumerate(diffs) if d] == [30]
    assert diffs[30] == pytest.approx(6.0)
    assert spiked[30].truth == clean[30].truth  # a sensor glitch, not physics


def test_stuck_sensor_repeats_its_value() -> None:
    frames = series("stuck@100s:50s,channel=current", seconds=200)
    stuck = {f.reported.current for f in frames[100:150]}
    assert len(stuck) == 1
    assert frames[150].reported.current not in stuck
    assert len({f.reported.bearing_temp for f in frames[100:150]}) > 1


def test_dropout_garbage_and_vanish_shape_the_output() -> None:
    frames = series("dropout@10s:5s", "garbage@20s:2s", "vanish@30s:10s", seconds=60)
    assert [f.index for f in frames if f.line is None] == [*range(10, 15), *range(30, 40)]
    assert [f.index for f in frames if not f.is_device_present] == list(range(30, 40))
    garbage = [f.line for f in frames[20:22]]
    assert all(line is not None and line.endswith(b"\n") for line in garbage)
    assert garbage[0] != frames[19].line


@pytest.mark.parametrize("fmt", list(LineFormat))
@pytest.mark.parametrize("timestamps", [False, True])
def test_every_line_parses_back_to_the_reported_values(fmt: LineFormat, timestamps: bool) -> None:
    sim = settings(format=fmt, timestamps=timestamps, rate_hz=5.0)
    frames = generate_series(sim, 20.0)
    counters: Counter[str] = Counter()
    decoder = LineDecoder(serial_config_for(sim, "loop://"), counters, lambda: 0.0)
    assembler = LineAssembler(512, counters)
    for frame in frames:
        assert frame.line is not None
        (line,) = assembler.feed(frame.line)
        readings = decoder.decode(line)
        assert [r.channel for r in readings] == list(CHANNELS)
        for r in readings:
            expected = round(getattr(frame.reported, r.channel), FIELD_DECIMALS[r.channel])
            assert r.value == pytest.approx(expected)
        if timestamps:
            assert readings[0].ts == pytest.approx(frame.t, abs=1e-3)  # epoch 0
    assert counters["lines_ok"] == len(frames)


def test_garbage_lines_are_rejected_by_the_parser() -> None:
    sim = settings("garbage@0s:60s", rate_hz=1.0)
    counters: Counter[str] = Counter()
    decoder = LineDecoder(serial_config_for(sim, "loop://"), counters, lambda: 0.0)
    assembler = LineAssembler(512, counters)
    data = b"".join(f.line or b"" for f in generate_series(sim, 60.0))
    for line in assembler.feed(data):
        decoder.decode(line)
    assert counters["lines_ok"] == 0
    assert sum(counters[k] for k in LINE_OUTCOMES) == data.count(b"\n")


def test_format_line_examples() -> None:
    from edge_agent.simulator import SensorValues

    values = SensorValues(61.234, 2.3456, 17.9, 22.0)
    assert format_line(LineFormat.CSV, values) == b"61.23,2.346,17.90,22.00\n"
    assert format_line(LineFormat.KEY_VALUE, values, ts=1.5) == (
        b"ts=1.500 bearing_temp=61.23 vibration=2.346 current=17.90 ambient=22.00\n"
    )
    assert format_line(LineFormat.JSON, values) == (
        b'{"bearing_temp": 61.23, "vibration": 2.346, "current": 17.90, "ambient": 22.00}\n'
    )


@pytest.mark.parametrize(
    "kw",
    [
        {"rate_hz": 0.0},
        {"rate_hz": 1e6},
        {"duration_s": 0.0},
        {"csv_delimiter": "."},
        {"speed": 0.0},
        {"speed": 10.0},  # fast-forward without timestamps: the agent would use wall time
    ],
)
def test_bad_settings(kw: dict[str, float | str]) -> None:
    with pytest.raises(SimulatorSettingsInvalid):
        SimulatorSettings(**kw)  # type: ignore[arg-type]

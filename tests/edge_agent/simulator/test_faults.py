"""Fault specs: the documented grammar, defaults, errors, round trips."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.simulator import CHANNELS, Fault, FaultKind, FaultSpecInvalid, parse_fault
from edge_agent.simulator.faults import fault_argument


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("overheat@60s", Fault(FaultKind.OVERHEAT, 60.0, None, rate=1.0)),
        ("overheat@1m:10m,rate=2.5", Fault(FaultKind.OVERHEAT, 60.0, 600.0, rate=2.5)),
        ("vanish@30s:5s", Fault(FaultKind.VANISH, 30.0, 5.0)),
        ("vanish@30", Fault(FaultKind.VANISH, 30.0, 5.0)),
        ("wear@0", Fault(FaultKind.WEAR, 0.0, None, rate=0.2)),
        ("drift@1h", Fault(FaultKind.DRIFT, 3600.0, None, "bearing_temp", rate=0.05)),
        (
            "drift@10m:30m,channel=ambient,rate=0.02",
            Fault(FaultKind.DRIFT, 600.0, 1800.0, "ambient", rate=0.02),
        ),
        ("spike@10s", Fault(FaultKind.SPIKE, 10.0, 0.0, "bearing_temp", size=15.0)),
        (
            "spike@250ms:1s,channel=vibration,size=3",
            Fault(FaultKind.SPIKE, 0.25, 1.0, "vibration", size=3.0),
        ),
        ("stuck@20s,channel=current", Fault(FaultKind.STUCK, 20.0, None, "current")),
        ("dropout@1h", Fault(FaultKind.DROPOUT, 3600.0, 5.0)),
        ("GARBAGE@.5", Fault(FaultKind.GARBAGE, 0.5, 0.0)),
    ],
)
def test_specs(spec: str, fault: Fault) -> None:
    assert parse_fault(spec) == fault


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("melt@10s", "unknown fault 'melt'"),
        ("overheat", "missing @START"),
        ("overheat@", "missing @START"),
        ("overheat@soon", "start 'soon' is not a time"),
        ("vanish@1s:-2s", "duration '-2s' is not a time"),
        ("spike@1s,rate=3", "spike takes no 'rate'"),
        ("spike@1s,channel=pressure", "unknown channel 'pressure'"),
        ("wear@1s,rate=fast", "rate='fast' is not a number"),
        ("wear@1s,rate", "is not KEY=VALUE"),
        ("drift@1s,size=2", "drift takes no 'size'"),
        ("drift@1s,channel=flow", "unknown channel 'flow'"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecInvalid, match=message):
        parse_fault(spec)


def test_argparse_shows_the_message() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fault", type=fault_argument, action="append")
    assert parser.parse_args(["--fault", "overheat@60s"]).fault == [parse_fault("overheat@60s")]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown fault"):
        fault_argument("melt@1")


def test_sample_grid() -> None:
    fault = parse_fault("dropout@1.05s:0.5s")
    assert fault.first_sample(10.0) == 11  # ceil(10.5)
    assert fault.end_sample(10.0) == 16
    assert parse_fault("spike@2s").end_sample(10.0) == 21  # one sample
    assert parse_fault("overheat@2s").end_sample(10.0) is None


@given(
    kind=st.sampled_from(list(FaultKind)),
    start=st.floats(0, 1e5, allow_nan=False).map(lambda x: round(x, 3)),
    duration=st.none() | st.floats(0, 1e4, allow_nan=False).map(lambda x: round(x, 3)),
    channel=st.sampled_from(CHANNELS),
)
def test_str_round_trips(
    kind: FaultKind, start: float, duration: float | None, channel: str
) -> None:
    spec = f"{kind.value}@{start}s" + ("" if duration is None else f":{duration}s")
    if kind in (FaultKind.SPIKE, FaultKind.STUCK):
        spec += f",channel={channel}"
    fault = parse_fault(spec)
    assert parse_fault(str(fault)) == fault

"""Fast-forward: which stretches play in real time, and the device time of sample 0."""

from __future__ import annotations

from edge_agent.simulator import SimulatorSettings, parse_fault
from edge_agent.simulator.cli import _epoch
from edge_agent.simulator.device import LINK_FAULTS, REAL_TIME_MARGIN_S, _real_time_spans


def test_link_faults_play_in_real_time_with_a_margin_the_others_do_not() -> None:
    settings = SimulatorSettings(
        rate_hz=10.0,
        speed=100.0,
        timestamps=True,
        faults=tuple(
            parse_fault(f)
            for f in ("vanish@300s:20s", "overheat@100s:60s", "dropout@50s:10s", "garbage@900s")
        ),
    )
    m = REAL_TIME_MARGIN_S
    assert _real_time_spans(settings, LINK_FAULTS) == [
        (50.0 - m, 60.0 + m),
        (300.0 - m, 320.0 + m),
        (900.0 - m, 900.1 + m),  # one sample of garbage
    ]
    assert _real_time_spans(settings, frozenset()) == []


def test_a_given_epoch_wins_else_a_fast_forward_of_known_length_ends_near_now() -> None:
    settings = SimulatorSettings(speed=10.0, timestamps=True, duration_s=3600.0)
    assert _epoch(settings, 1_700_000_000.0) == 1_700_000_000.0
    assert _epoch(settings, None) is not None  # now - duration: placed in the past
    assert _epoch(SimulatorSettings(), None) is None  # real time: now, at the start

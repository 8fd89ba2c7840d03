"""ChannelCleaner: each check, its counter, spikes vs steps, stuck and stale (docs/cleaning.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_agent.alarms.model import HealthCondition
from edge_agent.cleaning.cleaner import ChannelCleaner, RejectReason
from edge_agent.cleaning.config import CleaningConfig


def feed(cleaner: ChannelCleaner, values: list[float], t0: float = 0.0, dt: float = 1.0) -> list:
    return [cleaner.check(t0 + i * dt, v) for i, v in enumerate(values)]


def test_everything_passes_with_no_checks_configured() -> None:
    cleaner = ChannelCleaner(CleaningConfig())
    assert feed(cleaner, [1e9, -1e9, 0.0, 5.0]) == [None] * 4
    assert cleaner.accepted == 4
    assert set(cleaner.rejected) == set(RejectReason)
    assert cleaner.rejected_total == 0


@pytest.mark.parametrize(
    ("config", "readings", "reason"),
    [
        (CleaningConfig(), [(0.0, 1.0), (1.0, math.nan)], RejectReason.NOT_FINITE),
        (CleaningConfig(), [(0.0, 1.0), (1.0, math.inf)], RejectReason.NOT_FINITE),
        (CleaningConfig(), [(0.0, 1.0), (math.nan, 1.0)], RejectReason.NOT_FINITE),
        (CleaningConfig(), [(5.0, 1.0), (4.0, 1.0)], RejectReason.TIME_BACKWARDS),
        (CleaningConfig(), [(5.0, 1.0), (5.0, 2.0)], RejectReason.DUPLICATE_TS),
        (CleaningConfig(min=0.0, max=10.0), [(0.0, 1.0), (1.0, 10.5)], RejectReason.RANGE),
        (CleaningConfig(min=0.0, max=10.0), [(0.0, 1.0), (1.0, -0.1)], RejectReason.RANGE),
        (CleaningConfig(max_rate_per_s=2.0), [(0.0, 1.0), (1.0, 3.5)], RejectReason.RATE),
        (
            CleaningConfig(stuck_after_s=2.0),
            [(0.0, 1.0), (1.0, 1.0), (2.0, 1.0)],
            RejectReason.STUCK,
        ),
    ],
)
def test_each_reason_is_returned_and_counted(
    config: CleaningConfig, readings: list[tuple[float, float]], reason: RejectReason
) -> None:
    cleaner = ChannelCleaner(config)
    results = [cleaner.check(ts, v) for ts, v in readings]
    assert results[:-1] == [None] * (len(readings) - 1)
    assert results[-1] is reason
    assert cleaner.rejected[reason] == 1
    assert cleaner.rejected_total == 1
    assert cleaner.accepted == len(readings) - 1
    assert cleaner.status(0.0)["rejected"] == {r.value: int(r is reason) for r in RejectReason}


def test_range_bounds_are_inclusive() -> None:
    cleaner = ChannelCleaner(CleaningConfig(min=0.0, max=10.0))
    assert feed(cleaner, [0.0, 10.0]) == [None, None]


def test_rate_is_measured_against_the_last_accepted_reading() -> None:
    cleaner = ChannelCleaner(CleaningConfig(max_rate_per_s=1.0))
    assert cleaner.check(0.0, 0.0) is None
    assert cleaner.check(1.0, 5.0) is RejectReason.RATE
    # 3 units in 3 s since the last accepted reading (at t=0): a plausible rate again.
    assert cleaner.check(3.0, 3.0) is None
    assert cleaner.last_accepted_ts == 3.0


def test_a_rejected_reading_does_not_become_the_time_reference() -> None:
    cleaner = ChannelCleaner(CleaningConfig(max=10.0))
    cleaner.check(1.0, 1.0)
    assert cleaner.check(2.0, 99.0) is RejectReason.RANGE
    assert cleaner.check(2.0, 2.0) is None  # not a duplicate of the rejected one


def noisy(n: int, level: float, seed: int) -> list[float]:
    return list(level + np.random.default_rng(seed).normal(0.0, 0.1, n))


def test_an_isolated_spike_is_rejected_and_the_signal_around_it_is_not() -> None:
    cleaner = ChannelCleaner(CleaningConfig(spike_k=6.0, spike_window=9))
    values = noisy(200, 20.0, 1)
    values[100] = 25.0
    values[150] = 14.0
    results = feed(cleaner, values)
    assert [i for i, r in enumerate(results) if r is not None] == [100, 150]
    assert cleaner.rejected[RejectReason.SPIKE] == 2


def test_two_adjacent_spikes_are_rejected_too() -> None:
    cleaner = ChannelCleaner(CleaningConfig(spike_k=6.0, spike_window=9))
    values = noisy(100, 20.0, 2)
    values[50] = values[51] = 30.0
    results = feed(cleaner, values)
    assert [i for i, r in enumerate(results) if r is not None] == [50, 51]


@pytest.mark.parametrize("window", [3, 5, 9, 21])
def test_a_lasting_step_gets_through_after_at_most_half_a_window(window: int) -> None:
    cleaner = ChannelCleaner(CleaningConfig(spike_k=6.0, spike_window=window))
    values = noisy(100, 20.0, 3) + noisy(100, 30.0, 4)
    results = feed(cleaner, values)
    rejected = [i for i, r in enumerate(results) if r is not None]
    assert rejected == list(range(100, 100 + len(rejected)))
    assert 1 <= len(rejected) <= window // 2
    assert all(r is RejectReason.SPIKE for r in results[100 : 100 + len(rejected)])


def test_spike_min_deviation_lets_a_quantized_flat_signal_move_by_a_step() -> None:
    strict = ChannelCleaner(CleaningConfig(spike_k=5.0))
    tolerant = ChannelCleaner(CleaningConfig(spike_k=5.0, spike_min_deviation=0.25))
    values = [21.5] * 20 + [21.6] + [21.5] * 5 + [30.0]
    assert feed(strict, values)[20] is RejectReason.SPIKE  # no spread known: any change
    results = feed(tolerant, values)
    assert results[:26] == [None] * 26
    assert results[26] is RejectReason.SPIKE


def test_gaussian_noise_is_almost_never_called_a_spike() -> None:
    cleaner = ChannelCleaner(CleaningConfig(spike_k=5.0))
    feed(cleaner, noisy(20_000, 50.0, 5))
    assert cleaner.rejected[RejectReason.SPIKE] < 20  # < 0.1 %


def test_stuck_sensor_is_detected_and_recovers_when_the_value_changes() -> None:
    cleaner = ChannelCleaner(CleaningConfig(stuck_after_s=5.0))
    results = feed(cleaner, [7.0] * 10)  # t = 0..9
    assert results[:5] == [None] * 5
    assert results[5:] == [RejectReason.STUCK] * 5
    assert cleaner.is_stuck
    assert cleaner.health(9.0) == frozenset({HealthCondition.STUCK})
    assert cleaner.check(10.0, 7.1) is None
    assert not cleaner.is_stuck
    assert cleaner.health(10.0) == frozenset()
    assert cleaner.rejected[RejectReason.STUCK] == 5


def test_stale_after_no_accepted_reading() -> None:
    cleaner = ChannelCleaner(CleaningConfig(stale_after_s=10.0, max=100.0))
    assert not cleaner.is_stale(1e9)  # never delivered and no start time: not judged
    cleaner.check(100.0, 1.0)
    assert not cleaner.is_stale(110.0)
    cleaner.check(105.0, 500.0)  # rejected readings do not keep a channel fresh
    assert cleaner.is_stale(110.5)
    assert cleaner.health(110.5) == frozenset({HealthCondition.STALE})


def test_stale_from_the_start_time_when_nothing_ever_arrives() -> None:
    cleaner = ChannelCleaner(CleaningConfig(stale_after_s=10.0), start_ts=1000.0)
    assert not cleaner.is_stale(1005.0)
    assert cleaner.is_stale(1010.5)


def test_stale_is_never_reported_when_not_configured() -> None:
    cleaner = ChannelCleaner(CleaningConfig(), start_ts=0.0)
    assert not cleaner.is_stale(1e12)


def test_config_rejects_inverted_range() -> None:
    with pytest.raises(ValueError, match="must be below"):
        CleaningConfig(min=5.0, max=1.0)


def test_a_stuck_sensor_is_stuck_not_stale() -> None:
    # The sensor keeps talking: "stuck" says what is wrong, one condition for one cause.
    cleaner = ChannelCleaner(CleaningConfig(stuck_after_s=5.0, stale_after_s=10.0))
    feed(cleaner, [7.0] * 30)  # t = 0..29, stuck (rejected) from t = 5
    assert cleaner.health(29.5) == frozenset({HealthCondition.STUCK})
    assert cleaner.health(40.0) == frozenset({HealthCondition.STALE, HealthCondition.STUCK})


def test_the_same_value_after_a_silence_is_not_stuck() -> None:
    cleaner = ChannelCleaner(CleaningConfig(stuck_after_s=60.0, stale_after_s=10.0))
    assert cleaner.check(0.0, 22.5) is None
    assert cleaner.check(90.0, 22.5) is None  # 90 s later, by chance the same value
    assert not cleaner.is_stuck
    feed_at = [90.0 + t for t in range(1, 70)]
    results = [cleaner.check(t, 22.5) for t in feed_at]  # now really repeating
    assert results[-1] is RejectReason.STUCK and cleaner.is_stuck

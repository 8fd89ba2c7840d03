"""Score rules that behave: silent while the detector warms up, and an anomaly alarm
that clears once the channel is normal again, at 10 Hz and at 5-minute periods alike.
Real detectors (``AnomalyDetector``) feed the real engine."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge_agent.alarms.model import AlarmEventKind
from edge_agent.anomaly.likelihood import AnomalyDetector, LikelihoodScoreConfig
from tests.edge_agent.alarms.conftest import Rig, build

RAISED, CLEARED = AlarmEventKind.RAISED, AlarmEventKind.CLEARED
RULE: dict[str, Any] = {
    "name": "anomaly",
    "channel": "c",
    "type": "score_above",
    "set": 100.0,  # gross anomalies, as the shipped example
    "clear": 1.0,
    "clear_steps": 100,
    "clear_share": 0.05,
}


def noisy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Readings around a wandering level, and one-step forecasts missing them by noise."""
    rng = np.random.default_rng(seed)
    level = 50.0 + 2.0 * np.sin(np.arange(n) / 50.0)
    return level + rng.normal(0, 0.5, n), level + rng.normal(0, 0.1, n)


def feed(
    rig: Rig, detector: AnomalyDetector, values: np.ndarray, forecasts: np.ndarray, period_s: float
) -> list[float | None]:
    scores = []
    for i, (v, f) in enumerate(zip(values, forecasts, strict=True)):
        score = detector.score(0.0, float(v), float(f))
        scores.append(score)
        rig.engine.on_sample("c", i * period_s, float(v), score=score)
    return scores


def test_silence_while_the_detector_warms_up() -> None:
    settings = LikelihoodScoreConfig()
    detector = AnomalyDetector(settings)
    values, forecasts = noisy(2000, 1)
    values[[3, 20, 100, 200]] += 40.0  # huge misses while every stage is still learning
    values[1500] += 90.0  # and one beyond all of them once it is warm
    rig = build([RULE])
    scores = feed(rig, detector, values, forecasts, 0.1)
    warm_at = settings.warmup + settings.likelihood_warmup
    assert scores[:warm_at] == [None] * warm_at
    assert [(e.kind, e.ts) for e in rig.events if e.kind is RAISED] == [(RAISED, 150.0)]


@pytest.mark.parametrize("period_s", [0.1, 300.0], ids=["10Hz", "5min"])
def test_an_anomaly_alarm_clears_when_the_channel_is_normal_again(period_s: float) -> None:
    detector = AnomalyDetector(LikelihoodScoreConfig())
    values, forecasts = noisy(3000, 2)
    values[1500] += 40.0
    rig = build([RULE])
    scores = feed(rig, detector, values, forecasts, period_s)
    events = [(e.kind, round(e.ts / period_s)) for e in rig.events]
    # Healthy noise scores above `clear` now and then (a 1-in-10 surprise is 1.0), so
    # "below clear for a while" would never hold; the window of steps does.
    assert sum(s is not None and s >= 1.0 for s in scores[1601:]) > 0
    assert events[0] == (RAISED, 1500)
    assert events[1][0] is CLEARED and 1500 + 100 <= events[1][1] <= 1500 + 200
    assert [kind for kind, _ in events].count(RAISED) == 1


def test_clear_share_lets_an_alarm_clear_through_scattered_noise() -> None:
    scores = [5.0] + [1.5 if i % 30 == 0 else 0.2 for i in range(1, 1000)]
    strict = build([{**RULE, "set": 3.0, "clear_share": 0.0}])
    tolerant = build([{**RULE, "set": 3.0}])
    for rig in (strict, tolerant):
        for i, score in enumerate(scores):
            rig.engine.on_sample("c", float(i), 50.0, score=score)
    assert [e.kind for e in strict.events] == [RAISED]  # 1.5 every 30 steps: never 100 quiet
    assert [(e.kind, e.ts) for e in tolerant.events] == [(RAISED, 0.0), (CLEARED, 100.0)]


def test_a_set_score_inside_the_window_keeps_the_alarm() -> None:
    rig = build([{**RULE, "set": 3.0}])
    scores = [5.0] + [0.0] * 80 + [4.0] + [0.0] * 150
    for i, score in enumerate(scores):
        rig.engine.on_sample("c", float(i), 50.0, score=score)
    assert [(e.kind, e.ts) for e in rig.events] == [(RAISED, 0.0), (CLEARED, 181.0)]


def test_default_clear_is_the_last_score_as_before() -> None:
    rig = build([{"name": "odd", "channel": "c", "type": "score_above", "set": 8.0, "clear": 3.0}])
    for ts, score in enumerate([9.0, 5.0, 2.9]):
        rig.engine.on_sample("c", float(ts), 20.0, score=score)
    assert [(e.kind, e.ts) for e in rig.events] == [(RAISED, 0.0), (CLEARED, 2.0)]


def test_an_override_keeps_the_channels_warm_up_and_rate_history() -> None:
    rate = {"name": "fast", "channel": "c", "type": "rate_above", "set": 5.0, "span_s": 1.0}
    rig = build([{**RULE, "set": 8.0, "warmup_s": 10.0}, rate])
    for ts in range(21):
        rig.engine.on_sample("c", float(ts), 50.0, score=0.5)
    assert rig.engine.override_rules({"anomaly": {"set": 4.0}, "fast": {"set": 3.0}}) == {}
    rig.engine.on_sample("c", 21.0, 54.0, score=5.0)  # no new warm-up; a rate at once
    assert sorted((e.alarm.rule, e.ts) for e in rig.events) == [("anomaly", 21.0), ("fast", 21.0)]

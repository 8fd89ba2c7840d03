"""rate_above with a direction: a rise, not the fall after it (docs/alarms.md, Rate rules)."""

from __future__ import annotations

import pytest

from edge_agent.alarms.rules.base import Condition
from edge_agent.alarms.rules.rate import RateRule


def conditions(direction: str, values: list[float]) -> list[Condition | None]:
    rule = RateRule.model_validate(
        {
            "name": "r",
            "channel": "c",
            "type": "rate_above",
            "set": 0.5,
            "span_s": 1.0,
            "direction": direction,
        }
    )
    check = rule.check(())
    return [check.on_sample(float(t), v, None, None, None) for t, v in enumerate(values)]


UP_THEN_DOWN = [0.0, 0.0, 1.0, 2.0, 1.0, 0.0]  # +1/s twice, then -1/s twice


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("both", [Condition.SET] * 4),
        ("rising", [Condition.SET, Condition.SET, Condition.CLEAR, Condition.CLEAR]),
        ("falling", [Condition.CLEAR, Condition.CLEAR, Condition.SET, Condition.SET]),
    ],
)
def test_a_direction_counts_only_its_changes(direction: str, expected: list[Condition]) -> None:
    found = conditions(direction, UP_THEN_DOWN)
    assert found[0] is None  # no history yet
    assert found[2:] == expected


def test_a_bad_direction_is_refused() -> None:
    with pytest.raises(ValueError, match="direction"):
        conditions("up", UP_THEN_DOWN)

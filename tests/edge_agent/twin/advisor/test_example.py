"""examples/twin.toml loads, and its advisor is the one the bench and the tests run."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import load_config
from edge_agent.twin.advisor.closedloop import pump_advisor_config

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "twin.toml"


def test_the_twin_example_loads_with_the_benchmarked_advisor() -> None:
    config = load_config(EXAMPLE).config
    assert config.advisor is not None
    assert config.advisor == pump_advisor_config()
    (action,) = config.actions
    assert action.type == "setpoint" and action.name == config.advisor.output
    limit = config.advisor.limits["bearing_temp"].above
    assert limit == next(r for r in config.alarms if r.name == "bearing-hot").set  # type: ignore[attr-defined]

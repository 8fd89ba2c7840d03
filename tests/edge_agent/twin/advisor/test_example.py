"""examples/twin.toml loads, and its advisor is the one the bench and the tests run."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.twin.advisor.closedloop import pump_advisor_config
from edgetwin_common.errors import ConfigInvalid

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "twin.toml"


def test_the_twin_example_loads_with_the_benchmarked_advisor() -> None:
    config = load_config(EXAMPLE).config
    assert config.advisor is not None
    assert config.advisor == pump_advisor_config()
    (action,) = config.actions
    assert action.type == "setpoint" and action.name == config.advisor.output
    limit = config.advisor.limits["bearing_temp"].above
    assert limit == next(r for r in config.alarms if r.name == "bearing-hot").set  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("advisor", "message"),
    [
        ('output = "hook"', "advisor.output: 'hook' is not a control output in [[actions]]"),
        ("safe_value = 2.0", "safe_value (2.0) must be within [minimum, maximum]"),
        ("minimum = 0.9\nmaximum = 0.5", "minimum (0.9) must be below maximum (0.5)"),
        ("enabled = true", "an enabled advisor needs output"),
    ],
)
def test_advisor_config_problems_are_named(tmp_path: Path, advisor: str, message: str) -> None:
    text = (
        '[[actions]]\ntype = "webhook"\nname = "hook"\nurl = "http://127.0.0.1:9/x"\n'
        f"[advisor]\n{advisor}\n[advisor.limits.bearing_temp]\nabove = 75\n"
    )
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    assert any(message in str(p) for p in caught.value.problems), caught.value.problems


def test_the_modbus_example_loads_with_the_same_advisor_on_a_shared_bus() -> None:
    config = load_config(EXAMPLE.with_name("twin-modbus.toml")).config
    assert config.advisor == pump_advisor_config()
    (source,) = config.sources
    (action,) = config.actions
    assert action.type == "modbus_setpoint" and action.name == config.advisor.output
    assert action.source == source.name  # type: ignore[attr-defined]
    assert {r.name for r in config.alarms} == {"bearing-hot", "bearing-very-hot"}

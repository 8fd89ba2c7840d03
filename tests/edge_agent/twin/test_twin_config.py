"""The [twin] section as a user writes it in TOML (docs/twin.md): bounds are TOML arrays."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import parse_config
from edgetwin_common.errors import ConfigInvalid

REPO = Path(__file__).resolve().parents[3]
BASE = (REPO / "examples" / "twin.toml").read_text()


def test_the_documented_twin_section_loads() -> None:
    config = parse_config(
        BASE + '\n[twin]\ncontrols = ["load"]\nbounds = { load = [0.0, 1.0] }\n', "twin.toml"
    )
    assert config.twin is not None
    assert config.twin.bounds == {"load": [0.0, 1.0]}


@pytest.mark.parametrize(
    ("bounds", "problem"),
    [
        ("{ load = [0.5] }", "twin.bounds.load"),
        ("{ load = [0.0, 1.0, 2.0] }", "twin.bounds.load"),
        ('{ load = ["0", "1"] }', "twin.bounds.load"),
        ("{ load = [1.0, 0.5] }", "low 1.0 must be below high 0.5"),
        ("{ speed = [0.0, 1.0] }", "not one of controls"),
    ],
)
def test_bad_bounds_are_named(bounds: str, problem: str) -> None:
    with pytest.raises(ConfigInvalid, match=problem):
        parse_config(BASE + f'\n[twin]\ncontrols = ["load"]\nbounds = {bounds}\n', "twin.toml")

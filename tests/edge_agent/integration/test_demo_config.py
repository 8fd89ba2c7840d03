"""The demo's agent runs the example config as shipped: the copy inside edgetwin_demo is
examples/agent.toml byte for byte, and the demo changes only names, paths, ports and URLs;
its plan crosses the example's own levels."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from edge_agent.config import AgentConfig
from edge_agent.simulator import generate_series
from edgetwin_demo.live import CROSS_AT, demo_config, example_text, plan

ROOT = Path(__file__).resolve().parents[3]
ALLOWED = {
    "agent.name",
    "agent.data_dir",
    "sources.0.port",
    "actions.0.url",
    "http.port",
    "sync.enabled",
    "sync.url",
    "sync.token",
}


def _diff(a: Any, b: Any, at: str = "") -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = a.keys() | b.keys()
        return set().union(*(_diff(a.get(k), b.get(k), f"{at}{k}.") for k in keys))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return set().union(
            *(_diff(x, y, f"{at}{i}.") for i, (x, y) in enumerate(zip(a, b, strict=True)))
        )
    return set() if a == b else {at.rstrip(".")}


class _Cloud:
    url = "http://127.0.0.1:9"


def test_the_packaged_example_is_the_repository_example() -> None:
    assert example_text() == (ROOT / "examples" / "agent.toml").read_text("utf-8")


def test_the_demo_changes_only_paths_ports_and_urls(tmp_path: Path) -> None:
    example = tomllib.loads((ROOT / "examples" / "agent.toml").read_text("utf-8"))
    data = demo_config("/tmp/pty-link", tmp_path, 18080, 18081, _Cloud(), "t" * 20)  # type: ignore[arg-type]

    assert _diff(example, data) == ALLOWED
    assert data["sources"][0]["port"] == "/tmp/pty-link"
    assert data["actions"][0]["url"] == "http://127.0.0.1:18081/alarms"
    AgentConfig.model_validate(data)
    # Without a cloud the sync stays as shipped.
    assert _diff(example, demo_config("/x", tmp_path, 1, 2)) == ALLOWED - {
        "sync.enabled",
        "sync.url",
        "sync.token",
    }


def test_the_plan_crosses_the_examples_levels(tmp_path: Path) -> None:
    p = plan(60.0, 20.0, tmp_path / "pump0")
    assert p.limit_c == 85.0  # the example's bearing-hot level
    frames = generate_series(p.settings, 60.0)
    crossed = next(f.t for f in frames if f.truth.bearing_temp >= p.limit_c)
    # After the model's first full window (32 one-second steps), before the device vanishes.
    assert 40.0 < crossed <= 60.0 * CROSS_AT + 0.1 < p.vanish_s
    assert max(f.truth.bearing_temp for f in frames if f.t < p.overheat_s) < p.limit_c - 10
    # The wear lifts vibration above the example's vibration-high set (4.5 mm/s).
    assert min(f.truth.vibration for f in frames if f.t > p.wear_s + 4.0) > 4.5
    assert max(f.truth.vibration for f in frames if f.t < p.wear_s) < 4.5

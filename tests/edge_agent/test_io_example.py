"""The industrial I/O example config loads, and builds every source and action it names
without touching hardware."""

from __future__ import annotations

from edge_agent.actions.gpio_output import GpioOutputAction
from edge_agent.actions.registry import build_actions
from edge_agent.config import load_config
from edge_agent.sources.base import SourceState
from edge_agent.sources.gpio import GpioSource
from edge_agent.sources.modbus.source import ModbusSource
from edge_agent.sources.onewire import OneWireSource
from edge_agent.sources.registry import build_source
from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "industrial-io.toml"


def test_industrial_io_example_builds() -> None:
    config = load_config(EXAMPLE).config
    sources = [build_source(s) for s in config.sources]
    assert [type(s) for s in sources] == [ModbusSource, GpioSource, OneWireSource]
    assert all(s.health.state is SourceState.STARTING for s in sources)
    modbus = sources[0]
    assert isinstance(modbus, ModbusSource)
    # T and RH share a request, and so do voltage and current: 4 requests for 6 values.
    assert len(modbus.blocks) == 4
    actions = build_actions(config.actions_by_name())
    assert isinstance(actions["beacon"], GpioOutputAction)
    assert not actions["beacon"].is_driving  # nothing claimed before start

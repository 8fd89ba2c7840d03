"""The loop closed over Modbus RTU in a real agent: the simulated pump is a pymodbus
slave on a socat pty pair, the agent's Modbus source polls its input registers and the
advisor writes the load setpoint through a modbus_setpoint action on the same bus (the
source's poll thread the one master). The pump takes the advisor's values and the
operator's override; the source's polls are not disturbed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx

from edge_agent.config import AgentConfig, LoadedConfig
from edge_agent.simulator import SimulatorSettings
from edge_agent.simulator.modbus import has_socat, modbus_bus
from edge_agent.simulator.modbus_pump import (
    INPUT_REGISTERS,
    SETPOINT_REGISTER,
    PumpSlave,
    run_modbus_pump,
)
from edge_agent.twin.advisor.advisor import CHANGE_ALARM
from edgetwin_common.testing import wait_until
from tests.conftest import require
from tests.edge_agent.agent_harness import running_agent

require(has_socat(), "socat is not installed (Debian package socat)", module=True)


def _config(tmp_path: Path, port: str) -> LoadedConfig:
    registers = [
        {"channel": channel, "kind": "input", "address": address, "slave": 1,
         "data_type": kind.value, "scale": scale, "period_s": 0.1}
        for channel, (address, kind, scale) in INPUT_REGISTERS.items()
    ]  # fmt: skip
    data: dict[str, Any] = {
        "agent": {"name": "it-modbus-advisor", "data_dir": str(tmp_path), "log_format": "text"},
        "sources": [{"type": "modbus", "name": "pump-bus", "port": port, "baudrate": 115200,
                     "timeout_s": 0.3, "registers": registers}],
        "actions": [{"type": "modbus_setpoint", "name": "pump-load", "source": "pump-bus",
                     "address": SETPOINT_REGISTER, "scale": 0.001, "safe_value": 0.3}],
        "advisor": {
            "enabled": True, "output": "pump-load", "safe_value": 0.3, "step_s": 1.0,
            "horizon_s": 120.0, "hold_off_s": 1.0, "max_rate_per_min": 6.0,
            "limits": {"bearing_temp": {"above": 75.0, "margin": 2.0}},
        },
        "http": {"port": 0},
    }  # fmt: skip
    return LoadedConfig(tmp_path / "agent.toml", AgentConfig.model_validate(data))


def test_the_agent_writes_the_pumps_setpoint_over_the_shared_rtu_bus(tmp_path: Path) -> None:
    slave = PumpSlave(1)
    stop = threading.Event()
    stepper = threading.Thread(
        target=run_modbus_pump, args=(SimulatorSettings(rate_hz=10.0, seed=6), slave, stop)
    )
    stepper.start()
    try:
        with (
            modbus_bus(tmp_path, [slave.device]) as bus,
            running_agent(_config(tmp_path, bus.client_path)) as agent,
        ):
            assert agent.http_url is not None and agent.advisor is not None
            action = agent.actions["pump-load"]
            wait_until(lambda: action.counters["written"] >= 1, "the advisor's first write", 30)
            first = agent.advisor.status()["applied"]
            # The register holds thousandths; 1000 (a load of 1) is "no limit" to the pump.
            wanted = None if round(first * 1000) == 1000 else round(first * 1000) / 1000
            wait_until(lambda: slave.command.setpoint == wanted, "the pump takes it", 10)
            with httpx.Client(base_url=agent.http_url, timeout=5.0) as client:
                client.post("/twin/advisor/override", json={"value": 0.5, "by": "ops"})
                wait_until(lambda: slave.command.setpoint == 0.5, "the override reaches it", 10)
                status = client.get("/status").json()
            events = agent.engine.recent(50)
    finally:
        stop.set()
        stepper.join(20)
    (source,) = status["sources"]
    counters = source["counters"]
    assert counters["answers_mismatched"] == 0 and counters["crc_errors"] == 0
    (pump_load,) = [a for a in status["actions"] if a["name"] == "pump-load"]
    assert pump_load["type"] == "modbus_setpoint" and not pump_load["is_failing"]
    assert pump_load["counters"]["failed"] == 0 and pump_load["counters"]["written"] >= 2
    assert any(e.alarm.rule == CHANGE_ALARM for e in events)
    assert slave.rejected == 0

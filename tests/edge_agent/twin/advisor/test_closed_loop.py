"""The closed loop: the simulated pump on a real pty, a real agent reading it through
pyserial, the advisor deciding and the setpoint action writing ``load=...`` back over
the same pty. A lubrication loss that overheats the pump left alone is derated before
the limit and the overheating alarm never fires; the operator's override reaches the
pump; the in-process loop the bench runs gives the same outcome."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from edge_agent.alarms.model import AlarmEventKind
from edge_agent.config import AgentConfig, LoadedConfig
from edge_agent.simulator import SimulatorSettings, generate_series, parse_fault, run_simulator
from edge_agent.simulator.command import LoadCommand
from edge_agent.simulator.source_config import serial_config_for
from edge_agent.twin.advisor.advisor import CHANGE_ALARM
from edge_agent.twin.advisor.closedloop import (
    heat_fault_runs,
    run_fixed,
    run_with_advisor,
)
from edgetwin_common.testing import wait_until
from tests.edge_agent.agent_harness import running_agent
from tests.edge_agent.simulator.harness import running_simulator  # noqa: F401  (pty check)

LIMIT_C = 75.0
SIM_S = 1800.0


def _overheats(bearing: list[float]) -> bool:
    run = 0
    for value in bearing:
        run = run + 1 if value >= LIMIT_C else 0
        if run >= 5:
            return True
    return False


def _config(tmp_path: Path, settings: SimulatorSettings) -> LoadedConfig:
    assert settings.link is not None
    source = serial_config_for(
        settings, str(settings.link), backoff={"initial_s": 0.05, "max_s": 0.2}
    )
    data: dict[str, Any] = {
        "agent": {"name": "it-advisor", "data_dir": str(tmp_path), "log_format": "text"},
        "sources": [source.model_dump(mode="json")],
        "actions": [{"type": "setpoint", "name": "pump-load", "port": str(settings.link)}],
        "alarms": [
            {"name": "bearing-hot", "channel": "bearing_temp", "type": "value_above",
             "set": LIMIT_C, "on_delay_s": 5, "severity": "critical"},
        ],
        "advisor": {
            "enabled": True, "output": "pump-load", "safe_value": 0.3,
            "limits": {"bearing_temp": {"above": LIMIT_C, "margin": 2.0}},
        },
        "http": {"port": 0},
    }  # fmt: skip
    return LoadedConfig(tmp_path / "agent.toml", AgentConfig.model_validate(data))


def test_the_agent_derates_the_pump_over_the_pty_and_the_overheating_alarm_never_fires(
    tmp_path: Path,
) -> None:
    settings = SimulatorSettings(
        rate_hz=1.0, seed=7, timestamps=True, speed=100.0, report_load=True,
        link=tmp_path / "pump0", duration_s=SIM_S,
        faults=(parse_fault("overheat@300s:900s,rate=2"),),
    )  # fmt: skip
    # Left alone, this pump overheats.
    assert _overheats([f.reported.bearing_temp for f in generate_series(settings, SIM_S)])
    command = LoadCommand()
    stop = threading.Event()
    epoch = time.time() - SIM_S
    with running_agent(_config(tmp_path, settings)) as agent:
        assert agent.http_url is not None and agent.advisor is not None
        simulator = threading.Thread(
            target=run_simulator, args=(settings, stop, None, epoch, command), daemon=True
        )
        simulator.start()
        with httpx.Client(base_url=agent.http_url, timeout=5.0) as client:
            # The operator holds the pump at 0.5 for a while, then lets the advisor go on.
            wait_until(lambda: agent.advisor.status()["applied"] is not None, "a first write", 30)
            refused = client.post("/twin/advisor/override", json={"value": 1.5})
            assert refused.status_code == 422
            assert "outside the bounds [0.15, 1.0]" in refused.text
            held = client.post("/twin/advisor/override", json={"value": 0.5, "by": "ops"}).json()
            assert held["override"] == 0.5 and held["override_by"] == "ops"
            wait_until(lambda: command.setpoint == 0.5, "the override reaches the pump", 10)
            client.post("/twin/advisor/override", json={"value": None})
            simulator.join(SIM_S / settings.speed + 30)
            assert not simulator.is_alive()
            status = client.get("/twin/advisor").json()
        events = agent.engine.recent(200)
    hot = [e for e in events if e.alarm.rule == "bearing-hot"]
    assert hot == [], "the overheating alarm fired"
    # The advisor derated the pump below what it ran at before the fault.
    limits = [value for _, value in command.history if value is not None]
    assert min(limits) < 0.6
    assert status["counters"]["changes"] >= 3 and status["override"] is None
    changes = [
        e for e in events if e.alarm.rule == CHANGE_ALARM and e.kind is AlarmEventKind.RAISED
    ]
    assert len(changes) >= 3


def test_the_in_process_loop_prevents_the_overheating_near_the_oracles_throughput() -> None:
    settings = heat_fault_runs(1, duration_s=3600.0)[0]  # a lubrication loss
    assert run_fixed(settings, None).overheated
    advised = run_with_advisor(settings, trace=True)
    assert not advised.overheated and advised.peak_c < LIMIT_C
    # The best fixed limit for this very run in hindsight (an oracle: the highest that
    # keeps the alarm off, by bisection) gives barely more throughput than the advisor,
    # which knows nothing of the fault and keeps a margin.
    low, high = 0.15, 1.0
    for _ in range(7):
        mid = (low + high) / 2
        low, high = (low, mid) if run_fixed(settings, mid).overheated else (mid, high)
    assert advised.throughput > 0.85 * run_fixed(settings, low).throughput
    assert len(advised.trace["t"]) == 360 and min(advised.trace["limit"]) < 0.6

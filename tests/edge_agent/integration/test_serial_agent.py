"""The agent on the simulated pump: a real pty read through real pyserial, real uvicorn,
real SQLite. The device vanishes and returns; garbage and spikes are counted, never fatal.

The agent starts first and its serial source waits for the device (the link does not
exist yet), so every line the simulator prints reaches it and the fault schedule,
counted from the simulator's start, is seen whole. Timeouts are guards only.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_agent.alarms.model import AlarmEvent, AlarmEventKind
from edge_agent.cleaning.cleaner import RejectReason
from edge_agent.config import AgentConfig, LoadedConfig
from edge_agent.daemon.agent import Agent
from edge_agent.simulator import CHANNELS, SimulatorSettings, parse_fault, serial_config_for
from edge_agent.sources.base import SourceState
from edge_agent.sources.lineproto import LineOutcome
from edgetwin_common.testing import wait_until
from tests.edge_agent.agent_harness import running_agent
from tests.edge_agent.simulator.harness import running_simulator

RATE_HZ = 50.0
GUARD_S = 20.0
HEALTH_RULE = "sensor-health"


def agent_config(tmp_path: Path, settings: SimulatorSettings, **channels: Any) -> LoadedConfig:
    assert settings.link is not None
    source = serial_config_for(
        settings, str(settings.link), backoff={"initial_s": 0.05, "max_s": 0.2}
    )
    data: dict[str, Any] = {
        "agent": {"name": "it-serial", "data_dir": str(tmp_path), "log_format": "text"},
        "sources": [source.model_dump(mode="json")],
        "channels": channels,
        "alarms": [
            {
                "name": HEALTH_RULE,
                "channel": "*",
                "type": "health",
                "conditions": ["disconnected"],
                "severity": "critical",
            }
        ],
        "http": {"port": 0},
    }
    return LoadedConfig(tmp_path / "agent.toml", AgentConfig.model_validate(data))


class EventLog:
    """Alarm events as the agent emits them (appended on the agent's loop thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[AlarmEvent] = []

    def __call__(self, event: AlarmEvent) -> None:
        with self._lock:
            self._events.append(event)

    def since(self, mark: int) -> list[AlarmEvent]:
        with self._lock:
            return self._events[mark:]

    def mark(self) -> int:
        with self._lock:
            return len(self._events)

    def channels(self, mark: int, kind: AlarmEventKind, rule: str) -> set[str]:
        return {
            e.alarm.channel for e in self.since(mark) if e.kind is kind and e.alarm.rule == rule
        }


def health_alarms_active(agent: Agent) -> set[str]:
    return {a.channel for a in agent.engine.active() if a.rule == HEALTH_RULE}


@pytest.mark.slow
def test_device_vanishes_and_returns_alarm_raised_then_cleared(tmp_path: Path) -> None:
    link = tmp_path / "pump0"
    settings = SimulatorSettings(
        rate_hz=RATE_HZ, seed=11, link=link, faults=(parse_fault("vanish@3s:1.5s"),)
    )
    loaded = agent_config(tmp_path, settings)
    events = EventLog()
    with running_agent(loaded) as agent:
        agent.alarm_listeners.append(events)
        (source,) = agent.sources
        # No device yet: the source keeps trying and says so.
        wait_until(
            lambda: source.health.counters["open_failures"] >= 1, "open failures", timeout_s=GUARD_S
        )
        with running_simulator(settings):
            # Before the vanish: connected, readings flowing into every channel, and the
            # startup health alarms (no device yet) cleared.
            wait_until(
                lambda: source.health.state is SourceState.CONNECTED and agent.samples >= 40,
                "readings before the vanish",
                timeout_s=GUARD_S,
            )
            assert set(agent.pipeline.channels) == set(CHANNELS)
            wait_until(
                lambda: not health_alarms_active(agent), "startup alarms cleared", timeout_s=GUARD_S
            )
            assert source.health.counters["reconnects"] == 0
            mark = events.mark()

            # The device vanishes: the source reports it, every channel raises.
            wait_until(
                lambda: source.health.state is SourceState.DISCONNECTED,
                "disconnect",
                timeout_s=GUARD_S,
            )
            assert source.health.last_error is not None
            wait_until(
                lambda: health_alarms_active(agent) == set(CHANNELS),
                "health alarms during the vanish",
                timeout_s=GUARD_S,
            )
            raised = events.channels(mark, AlarmEventKind.RAISED, HEALTH_RULE)
            assert raised == set(CHANNELS)

            # The device returns (a new pty behind the same link): reconnected by itself,
            # readings resume, the alarms clear.
            wait_until(
                lambda: source.health.state is SourceState.CONNECTED, "reconnect", timeout_s=GUARD_S
            )
            resumed_from = agent.samples
            wait_until(
                lambda: agent.samples >= resumed_from + 40, "readings resume", timeout_s=GUARD_S
            )
            assert source.health.counters["reconnects"] >= 1
            assert source.health.counters["open_failures"] >= 2  # while it was gone
            wait_until(
                lambda: not health_alarms_active(agent), "health alarms clear", timeout_s=GUARD_S
            )
            cleared = events.channels(mark, AlarmEventKind.CLEARED, HEALTH_RULE)
            assert cleared == set(CHANNELS)
            assert all(ch.processed > 0 for ch in agent.pipeline.channels.values())
            vanish_ids = [e.alarm.id for e in events.since(mark) if e.kind is AlarmEventKind.RAISED]
        # (Stopping the simulator first unplugs the device once more: more alarms, which
        # the agent's shutdown leaves active in the store for the next start.)
        store_path = agent.store.path

    # The vanish's alarms are on disk: one per channel, raised and cleared.
    with closing(sqlite3.connect(store_path)) as conn:
        marks = ",".join("?" * len(vanish_ids))
        rows = conn.execute(
            f"SELECT rule, channel, state, cleared_at FROM alarms WHERE id IN ({marks})",
            vanish_ids,
        ).fetchall()
    assert sorted(ch for _, ch, _, _ in rows) == sorted(CHANNELS)
    assert all(rule == HEALTH_RULE and state == "cleared" and at for rule, _, state, at in rows)


def test_garbage_and_spikes_are_counted_and_never_stop_the_agent(tmp_path: Path) -> None:
    spike = parse_fault("spike@2s:0.2s,channel=vibration")
    spiked_lines = (spike.end_sample(RATE_HZ) or 0) - spike.first_sample(RATE_HZ)
    settings = SimulatorSettings(
        rate_hz=RATE_HZ,
        seed=5,
        link=tmp_path / "pump0",
        faults=(parse_fault("garbage@1s:0.5s"), spike, parse_fault("garbage@2.5s")),
    )
    # The pump's vibration sits near 2 mm/s; a 6 mm/s spike is outside this range.
    loaded = agent_config(tmp_path, settings, vibration={"cleaning": {"min": 0, "max": 5}})
    with running_agent(loaded) as agent, running_simulator(settings):
        (source,) = agent.sources
        counters = source.health.counters

        def spikes_rejected() -> int:
            return agent.pipeline.channels["vibration"].cleaner.rejected[RejectReason.RANGE]

        wait_until(lambda: counters[LineOutcome.GARBAGE] >= 1, "garbage counted", timeout_s=GUARD_S)
        wait_until(lambda: spikes_rejected() >= 1, "spike rejected", timeout_s=GUARD_S)
        # After all three faults (2 s of lines later) it goes on, on the same connection.
        after = agent.samples
        wait_until(
            lambda: agent.samples >= after + 400, "readings after the faults", timeout_s=GUARD_S
        )
        assert source.health.state is SourceState.CONNECTED
        assert counters["reconnects"] == 0
        assert not (source.health.last_error or "").startswith("stream failed")
        assert counters[LineOutcome.OK] > 0
        # Spiked lines parse fine: counted OK by the source, each rejected by cleaning.
        assert spikes_rejected() == spiked_lines == 10
        other = ("bearing_temp", "current", "ambient")
        assert all(agent.pipeline.channels[ch].processed > 0 for ch in other)

        assert agent.http_url is not None
        with httpx.Client(base_url=agent.http_url, timeout=5.0) as client:
            status = client.get("/status").json()
    (src,) = status["sources"]
    assert src["state"] == "connected"
    assert src["counters"]["lines_garbage"] >= 1
    channel = next(c for c in status["channels"] if c["name"] == "vibration")
    assert channel["rejected"]["range"] >= 1

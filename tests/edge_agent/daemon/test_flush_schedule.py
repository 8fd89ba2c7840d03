"""The agent commits readings once per ``[store] flush_interval_s`` (SD-card wear: each
commit rewrites whole pages, docs/store.md#write-rate), not at every tick, and an alarm
event is committed at once together with what is buffered."""

from __future__ import annotations

import time
from pathlib import Path

from edge_agent.daemon.agent import TICK_S, Agent
from edgetwin_common.testing import wait_until
from tests.edge_agent.agent_harness import config_for, replay_temp_toml, running_agent

ROWS = 600
T0 = 1_700_000_000.0


def _csv(path: Path, rows: int, alarm_at: int | None = None) -> Path:
    lines = ["timestamp,temp"]
    for i in range(rows):
        temp = 90.0 if alarm_at is not None and i >= alarm_at else 50.0 + (i % 10) / 10
        lines.append(f"{T0 + i:.1f},{temp:.2f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _processed(agent: Agent) -> int:
    return sum(ch.processed for ch in agent.status().channels)


def test_readings_wait_for_the_flush_interval(tmp_path: Path) -> None:
    csv = _csv(tmp_path / "steady.csv", ROWS)
    body = replay_temp_toml(csv) + "\n[store]\nflush_interval_s = 60\n"
    with running_agent(config_for(tmp_path, body)) as agent:
        wait_until(lambda: _processed(agent) == ROWS, f"{ROWS} readings processed")
        # Several ticks go by (each closes intervals and checks health) without a commit.
        time.sleep(4 * TICK_S)
        stats = agent.store.stats()
        assert stats.flushes == 0
        assert stats.pending_rows == ROWS
    # Stopping the agent writes what was buffered.


def test_an_alarm_event_is_committed_at_once_with_the_buffer(tmp_path: Path) -> None:
    csv = _csv(tmp_path / "alarm.csv", ROWS, alarm_at=ROWS - 5)
    body = replay_temp_toml(csv) + "\n[store]\nflush_interval_s = 60\n"
    with running_agent(config_for(tmp_path, body)) as agent:
        wait_until(lambda: agent.store.stats().flushes >= 1, "the alarm's flush")
        wait_until(lambda: _processed(agent) == ROWS, f"{ROWS} readings processed")
        assert [a.rule for a in agent.store.alarms()] == ["temp-high"]
        assert agent.store.stats().reading_rows >= ROWS - 5

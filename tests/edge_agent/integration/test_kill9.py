"""`edge-agent run` killed with SIGKILL at several points and restarted on the same
data_dir: the store stays sound and keeps what it had; the agent comes back every time.

The kill points are defined by what the agent has done (rows processed, as /status
reports them), not by clocks.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from edgetwin_common.testing import free_port, wait_until
from tests.edge_agent.integration.helpers import (
    GUARD_S,
    AgentProcess,
    StoreSnapshot,
    agent_process,
    agent_toml,
    inspect_store,
    write_series,
)

ROWS = 5000
HIGH = range(20, 40)
"""The value_above alarm raises on row 20 and clears on row 40 of every pass."""
KILL_AFTER_ROWS = (0, 45, 120, 7, 300)
"""Rows processed (in that run) before each SIGKILL; 0: as soon as it is ready."""


def processed(agent: AgentProcess) -> int:
    return sum(int(c["processed"]) for c in agent.status()["channels"])


@pytest.mark.slow
def test_sigkill_at_any_point_loses_nothing_stored(tmp_path: Path) -> None:
    csv = tmp_path / "history.csv"
    write_series(csv, ROWS, high=HIGH)
    data_dir = tmp_path / "data"
    store_path = data_dir / "edge-agent.db"
    port = free_port()
    body = f"""
[[sources]]
type = "replay"
name = "history"
path = "{csv}"
speed = 100

[[alarms]]
name = "temp-high"
channel = "temp"
type = "value_above"
set = 80
clear = 75
"""
    config = tmp_path / "agent.toml"
    config.write_text(agent_toml(data_dir, body, port=port))

    before = StoreSnapshot("ok", 0, frozenset(), 0)
    for run, rows in enumerate(KILL_AFTER_ROWS):
        with agent_process(config, port, tmp_path / f"run{run}.log") as agent:
            agent.wait_ready()
            # What the previous runs stored is what this one starts from.
            assert agent.status()["store"]["details"]["reading_rows"] >= before.readings
            wait_until(
                lambda: processed(agent) >= rows,  # noqa: B023
                f"{rows} rows processed",
                timeout_s=GUARD_S,
            )
            code = agent.signal(signal.SIGKILL)
        assert code == -signal.SIGKILL

        after = inspect_store(store_path, scratch=tmp_path / f"copy{run}")
        assert after.integrity == "ok", f"run {run}"
        assert after.readings >= before.readings, f"run {run} lost readings"
        assert after.alarm_ids >= before.alarm_ids, f"run {run} lost alarms"
        assert after.alarm_events >= before.alarm_events, f"run {run} lost alarm events"
        if rows > HIGH.stop:
            # The alarm was written when it was raised and cleared, with every reading
            # buffered at that moment: both are on disk whenever the kill came.
            assert len(after.alarm_ids) > len(before.alarm_ids), f"run {run}"
            assert after.readings > before.readings, f"run {run}"
        before = after

    assert before.readings > 0 and len(before.alarm_ids) >= 3

    # A last start after all that: ready again, the history intact, a clean stop.
    with agent_process(config, port, tmp_path / "final.log") as agent:
        agent.wait_ready()
        alarms = agent.get("/alarms?limit=1000")
        assert {a["id"] for a in alarms} >= before.alarm_ids
        assert agent.signal(signal.SIGTERM) == 0, agent.output()
    final = inspect_store(store_path)
    assert final.integrity == "ok"
    assert final.readings >= before.readings
    assert final.alarm_ids >= before.alarm_ids

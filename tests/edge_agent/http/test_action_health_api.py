"""What the status page reads beyond the basics, through the running agent's API (real
uvicorn, real SQLite, a replayed CSV): each action's health in /status and /metrics
when the control room's webhook does not answer, the alarm levels in effect, and
/summaries (as stored and bucketed)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_agent.daemon.agent import Agent
from edgetwin_common.testing import wait_until
from tests.edge_agent.agent_harness import config_for, replay_temp_toml, running_agent

ROWS = 600
"""Ten minutes of data at 1 Hz: nine 60 s summary intervals closed."""


def _dead_port() -> int:
    with socket.socket() as probe:  # nobody listens on it once closed
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    csv = tmp_path / "pump.csv"
    t0 = 1_700_000_040  # on a 60 s boundary: every interval whole
    spike = [50.0 if 400 <= i < 450 else 0.0 for i in range(ROWS)]
    rows = [f"{t0 + i},{40.0 + spike[i] + (i % 7) * 0.1:.2f}" for i in range(ROWS)]
    csv.write_text("timestamp,temp\n" + "\n".join(rows) + "\n")
    loaded = config_for(
        tmp_path,
        replay_temp_toml(csv)
        + f"""
actions = ["log", "control-room"]

[[alarms]]
name = "temp-predicted"
channel = "*"
type = "forecast_below"
set = 5
clear = 6

[[actions]]
type = "webhook"
name = "control-room"
url = "http://127.0.0.1:{_dead_port()}/alarms"
retries = 1
backoff = {{ initial_s = 0.01, max_s = 0.02 }}

[http]
port = 0
""",
    )
    with running_agent(loaded) as running:
        wait_until(lambda: running.samples >= ROWS, "the replay to finish")
        yield running


def test_an_unreachable_webhook_shows_in_status_and_metrics(agent: Agent) -> None:
    assert agent.http_url is not None
    with httpx.Client(base_url=agent.http_url, timeout=10) as client:
        wait_until(
            lambda: _action(client, "control-room")["failed"] >= 2, "the raise and clear given up"
        )
        hook = _action(client, "control-room")
        log = _action(client, "log")
        metrics = client.get("/metrics").text
    assert hook["type"] == "webhook" and hook["is_failing"] is True
    assert hook["last_success"] is None and hook["last_error_at"] is not None
    assert "ConnectError" in hook["last_error"]
    assert hook["queue_depth"] == 0 and hook["dropped"] == 0
    assert log["type"] == "log" and log["last_success"] is not None and not log["is_failing"]
    assert 'edge_action_failing{action="control-room",type="webhook"} 1.0' in metrics
    assert 'edge_action_failing{action="log",type="log"} 0.0' in metrics
    assert 'edge_action_dropped_total{action="control-room",type="webhook"} 0.0' in metrics
    assert 'edge_action_queue_depth{action="control-room",type="webhook"} 0.0' in metrics


def test_alarm_levels_in_effect(agent: Agent) -> None:
    assert agent.http_url is not None
    levels = httpx.get(agent.http_url + "/status", timeout=10).json()["alarm_levels"]
    assert levels == [
        {"rule": "temp-high", "channel": "temp", "type": "value_above", "set": 80.0,
         "clear": 75.0, "severity": "critical"},
        {"rule": "temp-predicted", "channel": "temp", "type": "forecast_below", "set": 5.0,
         "clear": 6.0, "severity": "warning"},
    ]  # fmt: skip


def test_summaries_as_stored_and_bucketed(agent: Agent) -> None:
    assert agent.http_url is not None
    with httpx.Client(base_url=agent.http_url, timeout=10) as client:
        wait_until(
            lambda: len(client.get("/summaries", params={"channel": "temp"}).json()) >= 9,
            "nine closed intervals",
        )
        stored = client.get("/summaries", params={"channel": "temp"}).json()
        since = stored[2]["start"]
        later = client.get("/summaries", params={"channel": "temp", "since": since}).json()
        hourly = client.get("/summaries", params={"channel": "temp", "step": 300}).json()
        bad = [
            client.get("/summaries", params={"channel": "temp", "since": "nan"}),
            client.get("/summaries", params={"channel": "temp", "step": "0"}),
            client.get("/summaries"),
        ]
        none = client.get("/summaries", params={"channel": "nope"}).json()
    assert all(s["end"] - s["start"] == 60 and s["count"] == 60 for s in stored[:9])
    assert later == stored[2:]
    spike = next(s for s in stored if s["max"] > 80)
    assert spike["min"] < 50 < spike["max"]
    assert [h["start"] % 300 for h in hourly] == [0.0] * len(hourly)
    assert sum(h["count"] for h in hourly) == sum(s["count"] for s in stored)
    assert max(h["max"] for h in hourly) == max(s["max"] for s in stored)
    first = [s for s in stored if s["start"] < hourly[0]["end"]]
    mean = sum(s["mean"] * s["count"] for s in first) / sum(s["count"] for s in first)
    assert hourly[0]["mean"] == pytest.approx(mean)
    assert [r.status_code for r in bad] == [422, 422, 422]
    assert none == []


def _action(client: httpx.Client, name: str) -> dict[str, object]:
    actions = client.get("/status").json()["actions"]
    found: dict[str, object] = next(a for a in actions if a["name"] == name)
    return found

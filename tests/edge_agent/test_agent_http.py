"""The running agent through its HTTP API: real uvicorn, real SQLite, a replayed CSV."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from edge_agent.daemon.agent import Agent
from edgetwin_common.testing import wait_until
from tests.edge_agent.agent_harness import config_for, replay_temp_toml, running_agent

ROWS = 400
STEP_AT = 300


def _write_csv(path: Path) -> None:
    rng = np.random.default_rng(5)
    t0 = 1_700_000_000
    lines = ["timestamp,temp"]
    for i in range(ROWS):
        value = 40.0 + 0.5 * np.sin(i / 15) + 0.05 * rng.standard_normal()
        if i >= STEP_AT:
            value += 50.0
        lines.append(f"{t0 + i},{value:.4f}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    csv = tmp_path / "pump.csv"
    _write_csv(csv)
    loaded = config_for(
        tmp_path,
        replay_temp_toml(csv)
        + """
[[alarms]]
name = "temp-anomaly"
channel = "*"
type = "score_above"
set = 12

[http]
port = 0
token = "s3cret-s3cret-s3cret"
""",
    )
    with running_agent(loaded) as running:
        wait_until(
            lambda: sum(c.processed for c in running.pipeline.channels.values()) >= ROWS,
            "all rows processed",
        )
        yield running


def test_health_ready_and_openapi(agent: Agent) -> None:
    with httpx.Client(base_url=agent.http_url) as client:
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/ready").json()["status"] == "ready"
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/status", "/readings", "/alarms", "/alarms/{alarm_id}/ack", "/metrics"} <= set(
            paths
        )


def test_status_shows_model_channel_forecast_and_alarms(agent: Agent) -> None:
    with httpx.Client(base_url=agent.http_url) as client:
        status = client.get("/status").json()
    assert status["model"]["name"] == "edgetwin-generic-forecaster"
    (channel,) = status["channels"]
    assert channel["name"] == "temp" and channel["unit"] == "°C"
    assert channel["processed"] == ROWS
    assert channel["forecast"]["horizons"] == status["model"]["horizons"]
    assert abs(channel["forecast"]["values"][0] - channel["last_value"]) < 10
    rules = {a["rule"] for a in status["alarms"]}
    assert "temp-high" in rules
    assert status["sources"][0]["name"] == "history"


def test_readings_come_back_with_forecasts_and_scores(agent: Agent) -> None:
    with httpx.Client(base_url=agent.http_url) as client:
        rows = client.get("/readings", params={"channel": "temp", "limit": 50}).json()
        assert len(rows) == 50
        assert all(r["forecast"] is not None and r["anomaly_score"] is not None for r in rows)
        since = rows[-1]["ts"]
        assert len(client.get("/readings", params={"channel": "temp", "since": since}).json()) == 1
        assert client.get("/readings", params={"channel": "temp", "limit": 0}).status_code == 422
        # No channel: every channel's (here the one), as docs/agent.md lists it optional.
        every = client.get("/readings", params={"limit": 50}).json()
        assert every == rows


def test_acknowledge_needs_the_token_and_changes_the_state(agent: Agent) -> None:
    with httpx.Client(base_url=agent.http_url) as client:
        alarm = next(a for a in client.get("/alarms").json() if a["rule"] == "temp-high")
        assert alarm["state"] == "active_unacknowledged"
        url = f"/alarms/{alarm['id']}/ack"
        assert client.post(url).status_code == 401
        assert client.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": "Bearer s3cret-s3cret-s3cret"}
        bad = client.post(url, headers=auth, content=b"{not json", timeout=5)
        assert bad.status_code == 422
        done = client.post(url, headers=auth, json={"by": "operator-7"})
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "active_acknowledged"
        assert done.json()["acked_by"] == "operator-7"
        missing = client.post("/alarms/999999/ack", headers=auth)
        assert missing.status_code == 404 and "999999" in missing.json()["detail"]
        stored = next(a for a in client.get("/alarms").json() if a["id"] == alarm["id"])
        assert stored["state"] == "active_acknowledged"


def test_metrics_agree_with_status(agent: Agent) -> None:
    with httpx.Client(base_url=agent.http_url) as client:
        text = client.get("/metrics").text
    assert f'edge_samples_processed_total{{channel="temp"}} {float(ROWS)}' in text
    assert 'edge_alarms_active{severity="critical",state="active_unacknowledged"} 1.0' in text
    model_line = next(
        line for line in text.splitlines() if line.startswith("edge_agent_model_info{")
    )
    assert 'name="edgetwin-generic-forecaster"' in model_line and "backend=" in model_line

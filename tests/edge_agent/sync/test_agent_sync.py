"""The agent with [sync] on, against the fake cloud: summaries and alarms arrive, the
first batch carries the reported state, /status shows sync health, the cloud's overrides
are applied, reported back, and re-applied by the next start."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

from edge_agent.daemon.agent import Agent
from edgetwin_common.testing import wait_until
from edgetwin_contracts.batch import AlarmOverride, DesiredState
from tests.edge_agent.agent_harness import config_for, running_agent

from .fakecloud import FakeCloud
from .helpers import TOKEN


def write_csv(path: Path) -> None:
    t0 = 1_700_000_000
    lines = ["timestamp,temp"] + [
        f"{t0 + i},{40.0 + (50.0 if i >= 300 else 0.0) + 0.01 * (i % 7):.3f}" for i in range(400)
    ]
    path.write_text("\n".join(lines) + "\n")


def test_agent_syncs_reports_and_applies_desired(cloud: FakeCloud, tmp_path: Path) -> None:
    csv = tmp_path / "pump.csv"
    write_csv(csv)
    cloud.desired = DesiredState(
        version=2,
        alarm_overrides={"temp-high": AlarmOverride(set=1000, clear=900)},
        model_version="0.0.0-not-this-one",
    )
    loaded = config_for(
        tmp_path,
        f"""
[[sources]]
type = "replay"
name = "history"
path = "{csv}"
speed = 0

[[alarms]]
name = "temp-high"
channel = "temp"
type = "value_above"
set = 80
clear = 75

[http]
port = 0

[sync]
enabled = true
url = "{cloud.url}"
token = "{TOKEN}"
interval_s = 1
""",
    )
    with running_agent(loaded) as agent:
        wait_until(lambda: len(cloud.stored_summaries()) >= 5, "summaries in the cloud")
        wait_until(lambda: cloud.stored_alarm_events() != [], "the alarm in the cloud")
        wait_until(
            lambda: cloud.reported is not None and cloud.reported.desired_version_applied == 2,
            "desired state reported back",
        )
        assert agent.engine.rule("temp-high").set == 1000
        with httpx.Client(base_url=agent.http_url) as client:
            sync = client.get("/status").json()["sync"]
    assert sync["enabled"] is True
    assert sync["state"] in {"idle", "sending"}
    assert sync["batches_sent"] >= 1 and sync["last_success_ts"] is not None
    assert sync["desired_version"] == 2 and sync["last_sequence"] >= 1
    assert set(sync["backlog"]) == {"alarm", "summary"}

    first = cloud.stored[min(cloud.stored)].reported
    assert first is not None, "the first batch after start carries the reported state"
    reported = cloud.reported
    assert reported is not None
    assert reported.config_hash == hashlib.sha256(loaded.path.read_bytes()).hexdigest()
    assert reported.model.version == agent.model.manifest.model.version
    assert reported.channels["temp"]["last_value"] is not None
    assert "outbox_dropped_summaries" in reported.counters
    assert reported.applied == ["alarm_overrides.temp-high"]
    assert [r.key for r in reported.refused] == ["model_version"]

    # The next start, before any contact with the cloud, runs with the cloud's override.
    again = Agent(loaded)
    try:
        assert again.engine.rule("temp-high").set == 1000
        assert again.twin is not None and again.twin.outcome.version == 2
    finally:
        again.store.close()


def test_status_without_sync(tmp_path: Path) -> None:
    loaded = config_for(tmp_path, "[http]\nport = 0\n")
    agent = Agent(loaded)
    try:
        sync = agent.status().sync
        assert (sync.enabled, sync.state) == (False, "disabled")
        assert agent.sync is None
    finally:
        agent.store.close()

"""The twin, end to end, with a real `cloud-sync serve` and a real `edge-agent run`.

An operator changes the desired state while the device is offline: an alarm override on
temp-high (set 95, clear 90, critical), sync_interval_s, and a model_version the agent
cannot fetch (no release behind it). When the agent comes back, the acknowledgement of its first
batch carries the change; the agent applies the override (new alarms are raised by the
new level, with the new severity) and the interval, refuses the model version with its
reason, and reports all that back; the cloud's twin shows it, and its alarm events carry
each alarm's reason exactly as the agent's /alarms shows it. A device's token cannot
read another device's twin.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgetwin_common.testing import free_port
from tests.e2e.helpers import (
    ADMIN,
    ALARM_RULE,
    CloudServer,
    RoundRobinProxy,
    agent_toml,
    answer_json,
    bearer,
    register_device,
    wait_until,
    write_channels_csv,
    write_cloud_toml,
)
from tests.edge_agent.integration.helpers import AgentProcess, agent_process

DEVICE = "pump-twin"
OTHER = "pump-other"
REFUSED_MODEL = "99.0.0-not-installed"
OVERRIDE = {"set": 95.0, "clear": 90.0, "severity": "critical"}


def cloud_twin(cloud: str, name: str, token: str | None = None) -> httpx.Response:
    headers = ADMIN if token is None else bearer(token)
    return httpx.get(f"{cloud}/v1/devices/{name}/twin", headers=headers, timeout=10)


def reported(cloud: str) -> dict[str, Any] | None:
    response = cloud_twin(cloud, DEVICE)
    response.raise_for_status()
    value: dict[str, Any] | None = response.json()["reported"]
    return value


def temp_alarms(agent: AgentProcess) -> list[dict[str, Any]]:
    alarms: list[dict[str, Any]] = agent.get("/alarms?limit=1000")
    return [a for a in alarms if a["rule"] == ALARM_RULE]


@pytest.mark.slow
def test_offline_desired_change_is_applied_refused_and_reported(tmp_path: Path) -> None:
    cloud_toml = write_cloud_toml(tmp_path / "cloud.toml", f"sqlite:///{tmp_path / 'cloud.db'}")
    token = register_device(cloud_toml, DEVICE)
    other = register_device(cloud_toml, OTHER)
    csv = tmp_path / "pump.csv"
    write_channels_csv(csv, 3000, alarm_every=100)
    data_dir = tmp_path / "data"
    port = free_port()
    config = tmp_path / "agent.toml"
    cloud = CloudServer(cloud_toml, tmp_path)
    cloud.start()
    try:
        # The proxy only records what goes by (one upstream), to read the acks.
        with RoundRobinProxy([("127.0.0.1", cloud.port)]) as proxy:
            config.write_text(
                agent_toml(
                    data_dir=data_dir,
                    csv=csv,
                    port=port,
                    sync_url=proxy.url,
                    token=token,
                    speed=100,
                )
            )
            # Online once, with the configured levels, then offline.
            with agent_process(config, port, tmp_path / "agent-1.log") as agent:
                agent.wait_ready()
                wait_until(lambda: reported(cloud.url) is not None, "a first report")
                wait_until(lambda: temp_alarms(agent) != [], "a temp-high alarm")
                first = temp_alarms(agent)[-1]
                model_version = agent.status()["model"]["version"]
                assert agent.signal(signal.SIGTERM) == 0, agent.output()
            assert first["severity"] == "warning" and first["message"].endswith(">= 80")

            # The operator's change, made while the device is offline.
            with httpx.Client(base_url=cloud.url, headers=ADMIN, timeout=10) as admin:
                current = admin.get(f"/v1/devices/{DEVICE}/desired")
                assert current.status_code == 200
                patch = admin.patch(
                    f"/v1/devices/{DEVICE}/desired",
                    headers={"If-Match": current.headers["ETag"]},
                    json={
                        "alarm_overrides": {ALARM_RULE: OVERRIDE},
                        "sync_interval_s": 2,
                        "model_version": REFUSED_MODEL,
                    },
                )
                assert patch.status_code == 200, patch.text
                version = int(patch.json()["version"])
            assert version == int(current.json()["version"]) + 1
            before = cloud_twin(cloud.url, DEVICE).json()
            assert before["desired_version"] == version and before["is_desired_applied"] is False

            # Back online.
            sent_before = len(proxy.exchanges)
            with agent_process(config, port, tmp_path / "agent-2.log") as agent:
                agent.wait_ready()
                wait_until(
                    lambda: (reported(cloud.url) or {}).get("desired_version_applied") == version,
                    "the desired state reported as applied",
                )
                sync = agent.status()["sync"]
                newest = max(a["id"] for a in temp_alarms(agent))
                # An alarm raised from now on is raised by the overridden rule.
                wait_until(
                    lambda: any(a["id"] > newest for a in temp_alarms(agent)),
                    "a temp-high alarm after the override",
                )
                raised = [a for a in temp_alarms(agent) if a["id"] > newest]
                assert agent.signal(signal.SIGTERM) == 0, agent.output()
            exchanges = proxy.exchanges[sent_before:]
        twin = cloud_twin(cloud.url, DEVICE).json()
        events = httpx.get(
            f"{cloud.url}/v1/devices/{DEVICE}/alarm-events?limit=1000", headers=ADMIN, timeout=10
        ).json()
        own = cloud_twin(cloud.url, DEVICE, token)
        own_short = httpx.get(f"{cloud.url}/v1/twin", headers=bearer(token), timeout=10)
        foreign = cloud_twin(cloud.url, DEVICE, other)
        foreign_desired = httpx.get(
            f"{cloud.url}/v1/devices/{DEVICE}/desired", headers=bearer(other), timeout=10
        )
    finally:
        cloud.kill_if_running()

    # The first request after the restart is a batch, and its ack carries the change.
    # (It may be the resend of a batch staged when the first run stopped: a duplicate's
    # ack carries the desired state all the same.)
    line, answer = exchanges[0]
    assert line.startswith("POST /v1/batches "), line
    ack = answer_json(answer)
    assert ack["desired"] == {
        "version": version,
        "model_version": REFUSED_MODEL,
        "alarm_overrides": {ALARM_RULE: {**OVERRIDE, "on_delay_s": None, "off_delay_s": None}},
        "sync_interval_s": 2.0,
        "model": None,
        "twin_version": None,
        "twin": None,
    }

    # The agent runs with it: the interval, and the rule's new level and severity.
    assert sync["desired_version"] == version and sync["interval_s"] == 2.0
    assert raised and all(
        a["severity"] == "critical" and a["message"].endswith(">= 95") for a in raised
    ), raised

    # The cloud's twin shows what the device reported back.
    rep = twin["reported"]
    assert twin["desired_version"] == version and twin["is_desired_applied"] is True
    # The agent may report again after its status was read (a source's state, a counter):
    # the cloud holds that report or a newer one.
    assert twin["reported_version"] == rep["version"] >= sync["reported_version"]
    assert rep["desired_version_applied"] == version
    assert sorted(rep["applied"]) == [f"alarm_overrides.{ALARM_RULE}", "sync_interval_s"]
    assert [r["key"] for r in rep["refused"]] == ["model_version"]
    # A version without a release behind it (desired.model) cannot be fetched: refused.
    assert "no release" in rep["refused"][0]["reason"], rep["refused"]
    assert rep["model"]["version"] == model_version != REFUSED_MODEL

    # Each alarm's reason reached the cloud as the device gave it (docs/alarms.md).
    in_cloud = {e["alarm"]["id"]: e["alarm"]["reason"] for e in events}
    assert first["reason"] is not None and in_cloud[first["id"]] == first["reason"]
    assert all(reason is not None for reason in in_cloud.values())

    # A device reads its own twin, never another's.
    assert own.status_code == 200 and own.json()["reported_version"] == twin["reported_version"]
    assert own_short.status_code == 200 and own_short.json()["device"] == DEVICE
    assert foreign.status_code == 403, foreign.text
    assert foreign_desired.status_code == 403, foreign_desired.text

"""Exactly once over MQTT, end to end: `edge-agent run` with ``[sync] transport =
"mqtt"`` SIGKILLed at random moments (E2E_MQTT_KILLS, default 15), a real Mosquitto
restarted mid-run (twice) and `cloud-sync serve` with ``[mqtt]`` SIGKILLed once, then
the cloud must hold exactly the store's summaries (with the same merged counts) and
each alarm event once, as over HTTP (tests/e2e/test_exactly_once.py explains the
counts). Outbox rows go only on the cloud's acknowledgement: a batch the broker took
(PUBACK) but the cloud never stored is resent. And a desired change reaches a device
whose sync interval is an hour, without waiting for it; the device killed is shown
offline on the fleet page within the keep-alive."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import httpx
import pytest

from edgetwin_common.mosquitto import Mosquitto
from edgetwin_common.testing import free_port
from tests.e2e.helpers import (
    ADMIN,
    CloudServer,
    agent_toml,
    cloud_view,
    env_int,
    register_device,
    store_view,
    wait_quiescent,
    wait_until,
    write_channels_csv,
    write_cloud_toml,
)
from tests.e2e.test_exactly_once import is_source_finished, run_briefly
from tests.edge_agent.integration.helpers import agent_process
from tests.mqtt_broker import require_mosquitto

KILLS = env_int("E2E_MQTT_KILLS", 15)
SEED = env_int("E2E_SEED", random.randrange(1 << 30))
ROWS = 1500
DEVICE = "pump-mqtt"
FAST = "backoff = { initial_s = 0.1, max_s = 0.5 }"


def presence(cloud_url: str) -> bool | None:
    rows = httpx.get(f"{cloud_url}/v1/devices", headers=ADMIN, timeout=10).json()
    found: bool | None = next(r["is_online"] for r in rows if r["name"] == DEVICE)
    return found


def mqtt_cloud_toml(path: Path, db_url: str, broker: Mosquitto) -> Path:
    write_cloud_toml(path, db_url)
    with path.open("a") as toml:
        toml.write(
            f"\n[mqtt]\nenabled = true\ndesired_poll_s = 0.05\n"
            f"broker = {{ port = {broker.port}, keepalive_s = 5, {FAST} }}\n"
        )
    return path


def mqtt_agent_toml(broker: Mosquitto, cloud_url: str, **kwargs: object) -> str:
    text = agent_toml(sync_url=cloud_url, token="unused-over-mqtt", **kwargs)  # type: ignore[arg-type]
    return text.replace(
        'token = "unused-over-mqtt"\n',
        f'transport = "mqtt"\nmqtt = {{ device = "{DEVICE}", broker = {{ port = {broker.port},'
        f" keepalive_s = 5, {FAST} }} }}\n",
    ).replace("timeout_s = 5\n", "timeout_s = 2\n")


@pytest.mark.slow
def test_sigkills_and_broker_restarts_deliver_each_summary_and_alarm_once(
    tmp_path: Path, cloud_db_url: str
) -> None:
    require_mosquitto()
    rng = random.Random(SEED)
    print(f"\nE2E_SEED={SEED} E2E_MQTT_KILLS={KILLS} db={cloud_db_url.split(':')[0]}")
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    cloud_toml = mqtt_cloud_toml(tmp_path / "cloud.toml", cloud_db_url, broker)
    register_device(cloud_toml, DEVICE)
    csv = tmp_path / "pump.csv"
    write_channels_csv(csv, ROWS)
    data_dir = tmp_path / "data"
    port = free_port()
    config = tmp_path / "agent.toml"
    cloud = CloudServer(cloud_toml, tmp_path, "cloud")
    broker_outages = {KILLS // 4, 3 * KILLS // 4}
    cloud_kill = KILLS // 2
    cloud.start()
    try:
        config.write_text(
            mqtt_agent_toml(broker, cloud.url, data_dir=data_dir, csv=csv, port=port, speed=300.0)
        )
        for kill in range(KILLS):
            with agent_process(config, port, tmp_path / f"agent-{kill}.log") as agent:
                agent.wait_ready()
                if not broker.is_running:
                    time.sleep(rng.uniform(0.0, 1.0))
                    broker.start()  # back mid-run, with its persistence
                if cloud.proc is not None and cloud.proc.poll() is not None:
                    time.sleep(rng.uniform(0.0, 1.0))
                    cloud.start()
                run_briefly(agent, rng, cloud)
                if kill in broker_outages:
                    broker.stop()
                    time.sleep(rng.uniform(0.1, 1.0))
                if kill == cloud_kill:
                    assert cloud.stop(signal.SIGKILL) == -signal.SIGKILL
                assert agent.signal(signal.SIGKILL) == -signal.SIGKILL, agent.output()
        if not broker.is_running:
            broker.start()
        if cloud.proc is not None and cloud.proc.poll() is not None:
            cloud.start()

        config.write_text(
            mqtt_agent_toml(broker, cloud.url, data_dir=data_dir, csv=csv, port=port, speed=0)
        )
        with agent_process(config, port, tmp_path / "agent-final.log") as agent:
            agent.wait_ready()
            wait_until(lambda: is_source_finished(agent), "the replay to finish")
            final_sync = wait_quiescent(agent.url)
            assert agent.signal(signal.SIGKILL) == -signal.SIGKILL

        store = store_view(data_dir / "edge-agent.db")
        held = cloud_view(cloud_db_url, DEVICE)
    finally:
        cloud.kill_if_running()
        broker.stop()

    print(
        f"cloud starts {cloud.starts}; store {len(store.summaries)} summaries, "
        f"{sum(store.events.values())} alarm events; cloud {len(held.batches)} batches, "
        f"{held.duplicates} duplicates"
    )
    assert (store.outbox_rows, store.inflight, store.quarantined, store.dropped) == (0, 0, 0, 0)
    assert len(store.summaries) >= 3 * (ROWS * 2 // 10 - 1)
    assert store.events
    missing = store.summaries.keys() - held.summaries.keys()
    extra = held.summaries.keys() - store.summaries.keys()
    assert not missing and not extra, f"missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}"
    assert held.summary_rows == len(store.summaries)
    differ = {
        k: (n, held.summaries[k]) for k, n in store.summaries.items() if held.summaries[k] != n
    }
    assert not differ, f"(store count, cloud count) differ: {list(differ.items())[:5]}"
    assert held.events == store.events
    assert set(held.events.values()) == {1}
    assert held.batches == list(range(1, held.last_sequence + 1))
    assert store.acked_sequence == final_sync["last_sequence"] == held.last_sequence


def test_a_desired_change_is_applied_without_waiting_for_the_sync_interval(
    tmp_path: Path,
) -> None:
    require_mosquitto()
    with Mosquitto(tmp_path / "broker") as broker:
        cloud_toml = mqtt_cloud_toml(
            tmp_path / "cloud.toml", f"sqlite:///{tmp_path / 'c.db'}", broker
        )
        register_device(cloud_toml, DEVICE)
        csv = tmp_path / "pump.csv"
        write_channels_csv(csv, 200)
        port = free_port()
        config = tmp_path / "agent.toml"
        cloud = CloudServer(cloud_toml, tmp_path, "cloud")
        cloud.start()
        try:
            config.write_text(
                mqtt_agent_toml(
                    broker, cloud.url, data_dir=tmp_path / "data", csv=csv, port=port,
                    speed=0, interval_s=3600.0,
                )
            )  # fmt: skip
            with agent_process(config, port, tmp_path / "agent.log") as agent:
                agent.wait_ready()
                wait_until(lambda: agent.status()["sync"]["batches_sent"] >= 1, "a first batch")
                wait_until(lambda: agent.status()["sync"]["next_attempt_in_s"] > 600, "idle")
                with httpx.Client(base_url=cloud.url, headers=ADMIN, timeout=10) as admin:
                    current = admin.get(f"/v1/devices/{DEVICE}/desired")
                    patch = admin.patch(
                        f"/v1/devices/{DEVICE}/desired",
                        headers={"If-Match": current.headers["ETag"]},
                        json={"sync_interval_s": 1800},
                    )
                    assert patch.status_code == 200, patch.text
                version = int(patch.json()["version"])
                wait_until(
                    lambda: agent.status()["sync"]["desired_version"] == version,
                    "the desired state applied (the next sync is an hour away)",
                )
                assert agent.status()["sync"]["interval_s"] == 1800
                assert presence(cloud.url) is True
                # Killed: no DISCONNECT, so the broker sends the will (after 1.5 keep-alives).
                assert agent.signal(signal.SIGKILL) == -signal.SIGKILL
                wait_until(lambda: presence(cloud.url) is False, "the device shown offline")
                page = httpx.get(f"{cloud.url}/", headers=ADMIN, timeout=10).text
                assert '<span class="presence health-stale">offline</span>' in page
        finally:
            cloud.kill_if_running()

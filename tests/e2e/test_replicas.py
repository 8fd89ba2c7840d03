"""The fleet deployment: two `cloud-sync serve` replicas on one PostgreSQL database
behind a round-robin load balancer (a small HTTP proxy here, real sockets on 127.0.0.1).

1. A real agent syncs through the proxy, its batches alternating between the replicas,
   and is SIGKILLed and restarted a few times: the cloud ends with every summary and
   alarm event of the device's store exactly once, and both replicas show the same twin.
2. The same batch posted to both replicas at the same moment (a retry racing the
   original): exactly one is stored, the other answered as a duplicate.
"""

from __future__ import annotations

import gzip
import json
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgetwin_common.testing import free_port
from tests.e2e.helpers import (
    ADMIN,
    CloudServer,
    RoundRobinProxy,
    agent_toml,
    bearer,
    cloud_view,
    register_device,
    store_view,
    wait_quiescent,
    wait_until,
    write_channels_csv,
    write_cloud_toml,
)
from tests.edge_agent.integration.helpers import T0, agent_process

DEVICE = "pump-fleet"
RACER = "pump-racer"
ROWS = 1500
KILLS = 4
RACES = 20


def race_body(sequence: int) -> bytes:
    """A gzip batch with one summary per channel and one alarm event (contract JSON)."""
    start = T0 + 10.0 * sequence
    summaries = [
        {
            "channel": channel,
            "start": start,
            "end": start + 10,
            "interval_s": 10.0,
            "count": 5,
            "min": 1.0,
            "max": 2.0,
            "mean": 1.5,
            "std": 0.1,
            "last": 1.7,
            "last_ts": start + 8,
        }
        for channel in ("temp", "pressure")
    ]
    alarm = {
        "id": sequence,
        "rule": "temp-high",
        "channel": "temp",
        "kind": "value_above",
        "severity": "warning",
        "state": "active_unacknowledged",
        "raised_at": start,
        "value": 99.0,
        "message": "temp above 80",
    }
    body = {
        "sequence": sequence,
        "created_at": time.time(),
        "summaries": summaries,
        "alarms": [{"kind": "raised", "ts": start, "alarm": alarm}],
    }
    return gzip.compress(json.dumps(body).encode(), mtime=0)


def post_together(urls: list[str], token: str, body: bytes) -> list[httpx.Response]:
    """POST ``body`` to every url at once (threads released by one barrier)."""
    barrier = threading.Barrier(len(urls))
    answers: list[httpx.Response | BaseException] = [RuntimeError("no answer")] * len(urls)
    headers = {**bearer(token), "Content-Encoding": "gzip", "Content-Type": "application/json"}

    def post(i: int, http: httpx.Client) -> None:
        try:
            barrier.wait(10)
            answers[i] = http.post(f"{urls[i]}/v1/batches", content=body, headers=headers)
        except BaseException as exc:  # reported by the caller's assertion
            answers[i] = exc

    clients = [httpx.Client(timeout=30) for _ in urls]
    try:
        threads = [threading.Thread(target=post, args=(i, c)) for i, c in enumerate(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for client in clients:
            client.close()
    responses = [a for a in answers if isinstance(a, httpx.Response)]
    assert len(responses) == len(urls), answers
    return responses


def twin(url: str, name: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/v1/devices/{name}/twin", headers=ADMIN, timeout=10)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


@pytest.mark.slow
def test_two_replicas_behind_a_balancer_store_each_batch_once(
    tmp_path: Path, pg_db_url: str
) -> None:
    rng = random.Random(7)
    cloud_toml = write_cloud_toml(tmp_path / "cloud.toml", pg_db_url)
    token = register_device(cloud_toml, DEVICE)
    racer = register_device(cloud_toml, RACER)
    replicas = [CloudServer(cloud_toml, tmp_path, f"replica{i}") for i in (1, 2)]
    csv = tmp_path / "pump.csv"
    write_channels_csv(csv, ROWS)
    data_dir = tmp_path / "data"
    port = free_port()
    config = tmp_path / "agent.toml"
    try:
        for replica in replicas:
            replica.start()
        with RoundRobinProxy([("127.0.0.1", r.port) for r in replicas]) as proxy:

            def write_config(speed: float) -> None:
                config.write_text(
                    agent_toml(
                        data_dir=data_dir,
                        csv=csv,
                        port=port,
                        sync_url=proxy.url,
                        token=token,
                        speed=speed,
                    )
                )

            write_config(300.0)
            for kill in range(KILLS):
                with agent_process(config, port, tmp_path / f"agent-{kill}.log") as agent:
                    agent.wait_ready()
                    time.sleep(rng.uniform(1.0, 2.5))
                    assert agent.signal(signal.SIGKILL) == -signal.SIGKILL
            write_config(0.0)
            with agent_process(config, port, tmp_path / "agent-final.log") as agent:
                agent.wait_ready()
                wait_until(
                    lambda: all(s["state"] == "finished" for s in agent.status()["sources"]),
                    "the replay to finish",
                )
                final_sync = wait_quiescent(agent.url)
                assert agent.signal(signal.SIGKILL) == -signal.SIGKILL
            forwarded = dict(proxy.forwarded)
        store = store_view(data_dir / "edge-agent.db")
        held = cloud_view(pg_db_url, DEVICE)
        twins = [twin(r.url, DEVICE) for r in replicas]

        # The race: the same (device, sequence) at both replicas at once.
        outcomes = []
        for sequence in range(1, RACES + 1):
            answers = post_together([r.url for r in replicas], racer, race_body(sequence))
            assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
            acks = [a.json() for a in answers]
            assert {a["sequence"] for a in acks} == {sequence}
            outcomes.append(sorted(a["duplicate"] for a in acks))
        raced = cloud_view(pg_db_url, RACER)
        racer_twins = [twin(r.url, RACER) for r in replicas]
    finally:
        for replica in replicas:
            replica.kill_if_running()

    print(f"\nrequests per replica {forwarded}; cloud {len(held.batches)} batches")
    # Both replicas took part (each request goes to the next one).
    assert set(forwarded) == {0, 1} and min(forwarded.values()) >= 3, forwarded

    # Exactly once through the balancer, as with one server.
    assert (store.outbox_rows, store.inflight, store.quarantined, store.dropped) == (0, 0, 0, 0)
    assert held.summaries == store.summaries
    assert held.summary_rows == len(store.summaries) >= 3 * (ROWS * 2 // 10 - 1)
    assert held.events == store.events and set(held.events.values()) == {1}
    assert held.batches == list(range(1, held.last_sequence + 1))
    assert store.acked_sequence == final_sync["last_sequence"] == held.last_sequence

    # One twin, whichever replica is asked; it holds what the device last reported.
    assert twins[0] == twins[1]
    view = twins[0]
    assert view["last_sequence"] == held.last_sequence
    assert view["reported_version"] == final_sync["reported_version"]
    assert view["counters"]["batches"] == len(held.batches)
    assert view["reported"]["counters"]["outbox_dropped_summaries"] == 0

    # The race: each sequence stored once, the other answer a duplicate.
    assert outcomes == [[False, True]] * RACES
    assert raced.batches == list(range(1, RACES + 1))
    assert raced.summary_rows == 2 * RACES
    assert sum(raced.events.values()) == RACES and set(raced.events.values()) == {1}
    assert racer_twins[0] == racer_twins[1]
    assert racer_twins[0]["counters"]["batches"] == RACES
    assert racer_twins[0]["counters"]["duplicates"] == RACES

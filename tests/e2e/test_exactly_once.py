"""Exactly once, end to end: `edge-agent run` SIGKILLed at random moments of ingest and
sync, many times (E2E_KILLS, default 30; a bench sets 100), against a real `cloud-sync
serve` that is itself stopped (SIGTERM, and once SIGKILL) and restarted mid-run.

Afterwards the cloud holds every interval summary the agent's store holds, and every
alarm event it produced, exactly once. The basis is the store itself: the replay starts
again from the top of its file after every restart, so the store merges re-read
intervals into the summaries it already has (their ``count`` grows) and each merge is
queued for the cloud again, superseding the earlier record there. So the cloud must end
with the same (channel, start) keys *and the same counts* as the store — a lost,
replayed-out-of-order or doubled batch shows up as a different count — and with each
alarm event of the store once.

Kill moments are random (seeded, the seed printed) or defined by what the agent is
doing (a batch staged, as its /status shows); nothing is asserted about durations.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import httpx
import pytest

from edgetwin_common.testing import free_port
from tests.e2e.helpers import (
    CloudServer,
    agent_toml,
    api_summaries,
    cloud_view,
    env_int,
    register_device,
    store_view,
    sync_status,
    wait_quiescent,
    wait_until,
    write_channels_csv,
    write_cloud_toml,
)
from tests.edge_agent.integration.helpers import AgentProcess, agent_process

KILLS = env_int("E2E_KILLS", 30)
"""Agent SIGKILLs per run (the issue asks for at least 30 in CI, 100 in the bench)."""
SEED = env_int("E2E_SEED", random.randrange(1 << 30))
ROWS = 3000
"""CSV rows, 2 s apart (6000 s of data, 600 summary intervals of 10 s per channel)."""
SPEED = 300.0
"""Replay speed of the killed runs: ~150 rows (450 readings) a second."""
DEVICE = "pump-e2e"


def is_source_finished(agent: AgentProcess) -> bool:
    return all(s["state"] == "finished" for s in agent.status()["sources"])


def run_briefly(agent: AgentProcess, rng: random.Random, cloud: CloudServer) -> str:
    """Let the agent work until a random moment, then return what was waited for."""
    agent.wait_ready()
    moment = rng.choice(("random", "random", "staged", "early"))
    if moment == "early":
        time.sleep(rng.uniform(0.0, 0.2))
    elif moment == "staged" and cloud.proc is not None and cloud.proc.poll() is None:
        # Kill while a batch is staged (sent or about to be): the resend case. Best
        # effort: if no batch is seen in flight within the guard the kill comes anyway.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            sync = sync_status(agent.url)
            if sync is not None and sync["in_flight"] is not None:
                break
            time.sleep(0.01)
    else:
        time.sleep(rng.uniform(0.1, 2.0))
    return moment


@pytest.mark.slow
def test_sigkills_and_cloud_restarts_deliver_each_summary_and_alarm_once(
    tmp_path: Path, cloud_db_url: str
) -> None:
    rng = random.Random(SEED)
    print(f"\nE2E_SEED={SEED} E2E_KILLS={KILLS} db={cloud_db_url.split(':')[0]}")
    cloud_toml = write_cloud_toml(tmp_path / "cloud.toml", cloud_db_url)
    token = register_device(cloud_toml, DEVICE)
    csv = tmp_path / "pump.csv"
    write_channels_csv(csv, ROWS)
    data_dir = tmp_path / "data"
    port = free_port()
    config = tmp_path / "agent.toml"
    cloud = CloudServer(cloud_toml, tmp_path, "cloud")
    # Cloud outages: stopped mid-run at these kills, started again mid-run of the next.
    outages = {KILLS * k // 4: signal.SIGTERM for k in (1, 3)} | {KILLS // 2: signal.SIGKILL}
    cloud.start()
    try:
        config.write_text(
            agent_toml(data_dir=data_dir, csv=csv, port=port, sync_url=cloud.url, token=token)
        )
        moments: list[str] = []
        for kill in range(KILLS):
            with agent_process(config, port, tmp_path / f"agent-{kill}.log") as agent:
                if cloud.proc is not None and cloud.proc.poll() is not None:
                    # The cloud went down during the previous run: back mid-run.
                    agent.wait_ready()
                    time.sleep(rng.uniform(0.0, 1.0))
                    cloud.start()
                moments.append(run_briefly(agent, rng, cloud))
                if kill in outages:
                    if outages[kill] is signal.SIGTERM:
                        cloud.terminate()
                    else:
                        assert cloud.stop(signal.SIGKILL) == -signal.SIGKILL
                    time.sleep(rng.uniform(0.1, 1.0))  # the agent backs off meanwhile
                assert agent.signal(signal.SIGKILL) == -signal.SIGKILL, agent.output()
        if cloud.proc is not None and cloud.proc.poll() is not None:
            cloud.start()

        # The last run reads the whole file, drains the outbox, and is killed when idle:
        # a clean stop would close the open intervals into new, unsent summaries.
        config.write_text(
            agent_toml(
                data_dir=data_dir, csv=csv, port=port, sync_url=cloud.url, token=token, speed=0
            )
        )
        with agent_process(config, port, tmp_path / "agent-final.log") as agent:
            agent.wait_ready()
            wait_until(lambda: is_source_finished(agent), "the replay to finish")
            final_sync = wait_quiescent(agent.url)
            assert agent.signal(signal.SIGKILL) == -signal.SIGKILL

        store = store_view(data_dir / "edge-agent.db")
        held = cloud_view(cloud_db_url, DEVICE)
        listed = api_summaries(cloud.url, DEVICE)
        twin = httpx.get(
            f"{cloud.url}/v1/twin", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).json()
    finally:
        cloud.kill_if_running()

    print(
        f"kill moments {dict((m, moments.count(m)) for m in set(moments))}; cloud starts "
        f"{cloud.starts}; store {len(store.summaries)} summaries (readings counted "
        f"{sum(store.summaries.values())}), {sum(store.events.values())} alarm events; cloud "
        f"{len(held.batches)} batches, {held.duplicates} duplicates"
    )
    # Nothing left behind on the device: everything the store holds was acknowledged.
    assert (store.outbox_rows, store.inflight, store.quarantined, store.dropped) == (0, 0, 0, 0)
    assert len(store.summaries) >= 3 * (ROWS * 2 // 10 - 1)
    assert len(store.events) >= 2 * (ROWS // 150), "the alarm raised and cleared on every pass"

    # Summaries: the same keys, each once, each with the store's merged count.
    missing = store.summaries.keys() - held.summaries.keys()
    extra = held.summaries.keys() - store.summaries.keys()
    assert not missing and not extra, f"missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}"
    assert held.summary_rows == len(store.summaries)
    differ = {
        k: (n, held.summaries[k]) for k, n in store.summaries.items() if held.summaries[k] != n
    }
    assert not differ, f"(store count, cloud count) differ: {list(differ.items())[:5]}"
    assert listed == held.summaries, "the admin API lists what the database holds"

    # Alarm events: every one the device produced, exactly once.
    assert held.events == store.events, (
        f"missing {store.events - held.events}, extra {held.events - store.events}"
    )
    assert set(held.events.values()) == {1}

    # Batches: sequences 1..n each stored once, and the device agrees on the last one.
    assert held.batches == list(range(1, held.last_sequence + 1))
    assert (
        store.acked_sequence
        == final_sync["last_sequence"]
        == held.last_sequence
        == twin["last_sequence"]
    )

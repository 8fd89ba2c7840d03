"""Exactly once across kill -9: a child process runs the real worker against the fake
cloud; the cloud holds its answer to batch k (having stored it, or not yet), the parent
SIGKILLs the child while the answer is held, releases it into the dead connection, and
starts a new child on the same store. The staged batch is resent with the same sequence
and bytes; every summary ends up stored exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

from .fakecloud import FakeCloud
from .helpers import TOKEN, fill_summaries, open_store

CHILD = Path(__file__).with_name("sync_child.py")
SUMMARIES = 40
CHANNELS = ("temp", "pressure", "flow")
MAX_BATCH_BYTES = 4096  # ~10 rows a batch: ~12 batches


def spawn(db: Path, url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(db), url, str(MAX_BATCH_BYTES)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


CASES = [(k, True) for k in (1, 2, 3, 5, 8)] + [(k, False) for k in (1, 2, 4, 7)]
"""(held sequence, stored before the kill?): after the cloud stored it, the resend is a
duplicate; before, the resend is the first copy the cloud stores."""


@pytest.mark.slow
@pytest.mark.parametrize(("held", "after_store"), CASES)
def test_kill9_between_send_and_ack(tmp_path: Path, held: int, after_store: bool) -> None:
    db = tmp_path / "agent.db"
    with open_store(db) as store:
        fill_summaries(store, SUMMARIES, CHANNELS)
    cloud = FakeCloud(token=TOKEN)
    cloud.hold(held, after_store=after_store)
    with cloud.serve() as url:
        first = spawn(db, url)
        try:
            assert cloud.held.wait(30), "the held batch never arrived"
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert first.returncode == -signal.SIGKILL
        stored_at_kill = set(cloud.stored)
        # The answer goes to a dead connection; a batch held before storing is dropped
        # by the cloud, as if its processing had died with the connection.
        cloud.release(abandon=not after_store)
        second = spawn(db, url)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 0, err.decode()[-2000:]
    assert (held in stored_at_kill) is after_store
    check_exactly_once(cloud, db)
    sent = [r for r in cloud.received if r.sequence == held]
    assert len(sent) == 2, "the held batch is sent once more after the restart"
    assert sent[0].body == sent[1].body, "resent byte for byte, same sequence"
    assert [r.status for r in sent] == ([200, 200] if after_store else [503, 200])
    assert cloud.duplicates() == ([held] if after_store else [])


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_kill9_at_random_moments(tmp_path: Path, seed: int) -> None:
    """Unsynchronised kills: wherever they land (building, staging, sending, committing),
    a restart carries on and nothing is lost or stored twice."""
    rng = random.Random(seed)
    db = tmp_path / "agent.db"
    with open_store(db) as store:
        fill_summaries(store, SUMMARIES, CHANNELS)
    cloud = FakeCloud(token=TOKEN)
    killed_running = 0
    with cloud.serve() as url:
        for _ in range(3):
            child = spawn(db, url)
            # Once the cloud has seen a few more requests, a few milliseconds later:
            # anywhere between building, staging, sending and committing a batch.
            target = len(cloud.received) + rng.randint(1, 3)
            deadline = time.monotonic() + 30
            while len(cloud.received) < target and child.poll() is None:
                assert time.monotonic() < deadline, "the child sends nothing"
                time.sleep(0.001)
            time.sleep(rng.uniform(0.0, 0.005))
            killed_running += child.poll() is None
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        last = spawn(db, url)
        _, err = last.communicate(timeout=60)
        assert last.returncode == 0, err.decode()[-2000:]
    assert killed_running >= 2
    check_exactly_once(cloud, db)


def check_exactly_once(cloud: FakeCloud, db: Path) -> None:
    stored = cloud.stored_summaries()
    assert len(stored) == len(set(stored)) == SUMMARIES * len(CHANNELS)
    assert cloud.mismatched_resends == 0
    assert sorted(cloud.stored) == list(range(1, len(cloud.stored) + 1))
    with open_store(db) as store:
        assert store.stats().outbox_rows == {"alarm": 0, "summary": 0}
        assert store.sync_inflight() is None
        assert store.meta_int("sync_acked_sequence") == max(cloud.stored)

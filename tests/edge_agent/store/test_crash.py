"""Crash safety: a writer killed with SIGKILL at random moments, many times.

After every kill the file must pass PRAGMA integrity_check, every batch must be all there
or not there at all (readings, its alarm and the alarm's history land in one
transaction), nothing a returned flush() wrote may be missing, and the next writer must
carry on. Limits deletes only ever remove the oldest readings (a prefix), so at most the
oldest surviving batch may be short, cut by a limit, never by a crash.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_agent.store import Store

from .blockrows import load_readings
from .crash_child import CONFIG

CHILD = Path(__file__).with_name("crash_child.py")
REPO = Path(__file__).resolve().parents[3]
KILLS = 20

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def run_and_kill(db: Path, seed: int, rng: random.Random, wait_ready: bool) -> list[int]:
    """Start a writer, SIGKILL it after a random delay; returns the batches it reported."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(db), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        if wait_ready:
            line = child.stdout.readline() if child.stdout else ""
            assert line.strip() == "ready", f"child failed: {child.stderr and child.stderr.read()}"
            time.sleep(rng.uniform(0.02, 0.5))
        else:
            time.sleep(rng.uniform(0.0, 0.4))  # may land while it opens or migrates
        assert child.poll() is None, f"child died: {child.stderr and child.stderr.read()}"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        # Read through the same text wrapper readline() used: communicate() would read
        # the pipe directly and miss lines readline() had already buffered.
        out = child.stdout.read() if child.stdout else ""
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
    assert child.returncode == -signal.SIGKILL
    return [int(w) for w in out.split() if w.isdigit()]


def check(db: Path, reported: int) -> int:
    """Assert the invariants on the file; returns the newest batch present."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        load_readings(conn)
        batches = conn.execute(
            "SELECT CAST(value AS INTEGER), CAST(forecast AS INTEGER), count(*)"
            " FROM readings GROUP BY value ORDER BY value"
        ).fetchall()
        n_alarms, max_alarm = conn.execute("SELECT count(*), max(id) FROM alarms").fetchone()
        n_events = conn.execute("SELECT count(*) FROM alarm_events").fetchone()[0]
        meta = conn.execute("SELECT value FROM meta WHERE key = 'max_alarm_id'").fetchone()
    finally:
        conn.close()
    if not batches:
        assert reported == 0 and not n_alarms
        return 0
    ids = [b for b, _, _ in batches]
    assert ids == list(range(ids[0], ids[-1] + 1)), "a batch is missing in the middle"
    for batch, declared, present in batches[1:]:
        assert present == declared, f"batch {batch}: {present} of {declared} rows"
    assert batches[0][2] <= batches[0][1]
    newest = ids[-1]
    assert reported <= newest <= reported + 1, "a flushed batch was lost, or one appeared"
    # one alarm and one event per batch, committed with it
    assert n_alarms == n_events == max_alarm == newest
    assert meta == (newest,)
    return newest


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_a_consistent_store(tmp_path: Path) -> None:
    db = tmp_path / "crash" / "store.db"
    rng = random.Random(1234)
    reported = 0
    progressed = 0
    for round_ in range(KILLS):
        got = run_and_kill(db, seed=round_, rng=rng, wait_ready=round_ % 4 != 3)
        if got:
            assert got[0] == reported + 1  # carried on from the newest committed batch
            reported = got[-1]
            progressed += 1
        newest = check(db, reported)
        reported = newest  # an unreported but committed batch counts from now on
    assert progressed >= KILLS // 2
    # the real Store opens the survivor, its counts agree, and it still writes
    with Store(db, CONFIG) as store:
        assert store.max_alarm_id() == reported
        rows = store.stats().reading_rows
        assert rows == len(store.readings("crash", limit=10**6))
        store.add_sample((reported + 1) * 10.0, "crash", -1.0, None, None)
        store.flush()
        assert store.readings("crash", limit=1)[0].value == -1.0
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()

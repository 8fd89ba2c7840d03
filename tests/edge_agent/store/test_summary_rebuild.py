"""The open summary interval survives a kill -9: a child process writes part of an
interval, flushes and is killed with SIGKILL; the next store on the file feeds the
committed readings back into the open interval, so the summary that closes it counts
every reading, and none twice."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.store import Store, StoreConfig
from tests.conftest import REPO

from .coverage import summary_coverage

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

CONFIG = StoreConfig(summary_interval_s=10.0)
CHILD = """
import sys
from edge_agent.store import Store, StoreConfig
store = Store(sys.argv[1], StoreConfig(summary_interval_s=10.0))
t0, n = float(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    store.add_sample(t0 + i * 0.25, "temp", 20.0 + i, 19.5 + i, None)
store.flush()
print("flushed", flush=True)
sys.stdin.read()  # until killed
"""


def write_and_kill(db: Path, t0: float, n: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(t0), str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "flushed"
        child.send_signal(signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_readings_of_an_interval_cut_by_kills_are_all_summarised(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    # Three lives inside one interval [1000, 1010), then one that runs past it.
    write_and_kill(db, 1000.0, 8)  # 1000.00 .. 1001.75
    write_and_kill(db, 1002.0, 8)  # 1002.00 .. 1003.75
    write_and_kill(db, 1004.0, 8)
    assert summary_coverage(db).uncovered == 24  # nothing closed the interval yet
    with Store(db, CONFIG) as store:
        for i in range(4):
            store.add_sample(1008.0 + i, "temp", 50.0, None, None)  # 1008, 1009 | 1010, 1011
        store.flush()
        first = store.summaries("temp")
    assert [(s.start, s.count) for s in first] == [(1000.0, 26)]
    summary = first[0]
    values = [20.0 + i for i in range(8)] * 3 + [50.0, 50.0]
    assert summary.mean == pytest.approx(sum(values) / 26)
    assert summary.max == 50.0 and summary.min == 20.0
    assert summary.error_count == 24 and summary.error_mae == pytest.approx(0.5)
    coverage = summary_coverage(db)
    assert coverage.readings == 28
    assert (coverage.uncovered, coverage.overcounted) == (0, 0)


def test_a_clean_stop_then_a_kill_counts_each_reading_once(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    with Store(db, CONFIG) as store:  # a clean stop writes the open part (1000..1003)
        for i in range(4):
            store.add_sample(1000.0 + i, "temp", 1.0, None, None)
    write_and_kill(db, 1004.0, 8)  # more of the same interval, then a kill
    with Store(db, CONFIG) as store:
        store.add_sample(1011.0, "temp", 2.0, None, None)
        store.flush()
        stored = store.summaries("temp")
        assert [(s.start, s.count) for s in stored] == [(1000.0, 12)]
        assert not math.isnan(stored[0].std)
    coverage = summary_coverage(db)
    assert (coverage.readings, coverage.uncovered, coverage.overcounted) == (13, 0, 0)

"""Local store throughput: the per-sample cost of ``Store.add_sample`` and the rate at
which ``Store.flush`` writes readings (one transaction per flush), on a real file.

Prints add_sample ns/sample (median of per-block means), flush rows/s at the configured
flush size and for large batches, the latency of a flush carrying an alarm event (the one
commit that fsyncs), bytes per stored reading, and the time of an ``enforce_limits`` that
trims the files under their cap. ``--dir`` puts the files on the medium to measure (an SD
card); the default is the system temp folder. Target (issue 4): flush > 100k rows/s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind, AlarmState, Severity
from edge_agent.store import Store, StoreConfig

CHANNELS = ("bearing_temp", "motor_current", "vibration_rms", "oil_pressure")


def feed(store: Store, n: int, t0: float, period_s: float = 0.01) -> float:
    """Add n samples round-robin over CHANNELS; returns the last ts."""
    ts = t0
    for i in range(n):
        ts = t0 + (i // len(CHANNELS)) * period_s
        value = 50.0 + (i % 97) * 0.1
        store.add_sample(ts, CHANNELS[i % len(CHANNELS)], value, value - 0.05, 0.8)
    return ts


def bench_add_sample(store: Store, n: int) -> float:
    """ns per add_sample call: median over blocks of 10k calls."""
    per_block = []
    block = 10_000
    for b in range(max(1, n // block)):
        t = time.perf_counter_ns()
        feed(store, block, 1.7e9 + b * 1000.0)
        per_block.append((time.perf_counter_ns() - t) / block)
        store.flush()
    return statistics.median(per_block)


def bench_flush(store: Store, rows: int, batches: int, t0: float) -> float:
    """Rows per second written by flush (time inside flush only)."""
    spent = 0.0
    for b in range(batches):
        feed(store, rows, t0 + b * rows)
        t = time.perf_counter()
        written = store.flush()
        spent += time.perf_counter() - t
        assert written >= rows
    return rows * batches / spent


def bench_alarm_flush(store: Store, n: int = 30) -> float:
    """Median ms of a flush carrying one alarm event (synchronous=FULL: one fsync)."""
    times = []
    for i in range(n):
        alarm = Alarm(
            id=i + 1,
            rule="hot",
            channel=CHANNELS[0],
            kind="value_above",
            severity=Severity.WARNING,
            state=AlarmState.ACTIVE_UNACKNOWLEDGED,
            raised_at=float(i),
            value=90.0,
            message="bench",
        )
        store.add_alarm_event(AlarmEvent(AlarmEventKind.RAISED, float(i), alarm))
        t = time.perf_counter()
        store.flush()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def bench_trim(folder: Path) -> tuple[int, float, int, dict[str, int]]:
    cap = 8 << 20
    store = Store(folder / "trim.db", StoreConfig(max_bytes=cap, readings_max_age_s=1e9))
    t0 = 1.7e9
    while store.stats().file_bytes < 2 * cap:
        t0 = feed(store, 50_000, t0) + 1.0
        store.flush()
    before = store.stats().file_bytes
    t = time.perf_counter()
    deleted = store.enforce_limits()
    spent = time.perf_counter() - t
    after = store.stats().file_bytes
    store.close()
    return before, spent, after, deleted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="readings per large batch")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        config = StoreConfig(max_bytes=4 << 30)
        store = Store(folder / "bench.db", config)
        ns = bench_add_sample(store, 200_000)
        small = bench_flush(store, config.flush_max_rows, 40, 1.8e9)
        large = bench_flush(store, args.rows, 5, 1.9e9)
        alarm_ms = bench_alarm_flush(store)
        stats = store.stats()
        bytes_per_row = stats.file_bytes / max(stats.reading_rows, 1)
        store.close()
        before, trim_s, after, deleted = bench_trim(folder)
    print(f"add_sample:              {ns:8.0f} ns/sample (buffer + summary, no SQL)")
    print(f"flush {config.flush_max_rows:>7} rows/txn:  {small:10,.0f} rows/s")
    print(f"flush {args.rows:>7} rows/txn:  {large:10,.0f} rows/s")
    print(f"flush with 1 alarm event: {alarm_ms:7.2f} ms (synchronous=FULL for that commit)")
    print(f"on disk:                 {bytes_per_row:8.1f} bytes/reading (incl. index)")
    print(
        f"enforce_limits:          {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB"
        f" (cap 8 MiB) in {trim_s * 1000:.0f} ms, deleted {deleted['readings_size']:,} readings"
    )
    verdict = "OK" if small > 100_000 else "BELOW TARGET"
    print(f"target flush > 100,000 rows/s: {verdict}")


if __name__ == "__main__":
    main()

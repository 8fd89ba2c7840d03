"""Child process of test_crash.py: writes batches to a Store until it is killed.

Usage: python crash_child.py DB_PATH SEED

Batch b (numbered on from the store's max_alarm_id()) is n readings of channel "crash"
with value = b and forecast = n (so the parent can check each batch is all there or not
there at all), timestamps ascending across batches, plus one alarm with id b, all in one
flush. After each flush returns it prints b. Every few batches it enforces the limits
(tight ones, so deletes, vacuums and checkpoints get killed too) and acks some outbox rows.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind, AlarmState, Severity
from edge_agent.store import Store, StoreConfig

CONFIG = StoreConfig(
    max_bytes=1 << 20,
    readings_max_age_s=400.0,
    summary_interval_s=5.0,
    outbox_max_rows=100,
)
BATCH_SPAN_S = 10.0


def main() -> None:
    path, seed = Path(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    store = Store(path, CONFIG)
    batch = store.max_alarm_id() + 1
    print("ready", flush=True)
    while True:
        n = rng.randint(1, 3000)
        t0 = batch * BATCH_SPAN_S
        for i in range(n):
            store.add_sample(t0 + i * (9.0 / n), "crash", float(batch), float(n), float(i))
        alarm = Alarm(
            id=batch,
            rule="crash",
            channel="crash",
            kind="value_above",
            severity=Severity.WARNING,
            state=AlarmState.ACTIVE_UNACKNOWLEDGED,
            raised_at=t0,
            value=float(batch),
            message="batch",
        )
        store.add_alarm_event(AlarmEvent(AlarmEventKind.RAISED, t0, alarm))
        store.flush()
        print(batch, flush=True)
        if batch % 5 == 0:
            store.enforce_limits()
        if batch % 7 == 0:
            pending = store.outbox_pending(limit=50)
            store.outbox_ack([row.id for row in pending[::2]])
        batch += 1


if __name__ == "__main__":
    main()

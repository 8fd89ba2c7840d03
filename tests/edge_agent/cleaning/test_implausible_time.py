"""A corrupted device clock: readings stamped far in the future are rejected with their
own counted reason and never become the store's data time (where retention, counting
the age limit back from the newest reading, would delete everything else)."""

from __future__ import annotations

import time
from pathlib import Path

from edge_agent.cleaning.cleaner import ChannelCleaner, RejectReason
from edge_agent.cleaning.config import CleaningConfig
from edge_agent.reading import MAX_FUTURE_S
from edge_agent.store import Store
from edge_agent.store.config import StoreConfig

CORRUPTED_TS = 1.8e14
"""What a device sent: a UNIX time in the year 5.7 million."""


def test_far_future_timestamp_rejected_and_counted() -> None:
    cleaner = ChannelCleaner(CleaningConfig())
    now = time.time()
    assert cleaner.check(now - 1.0, 20.0) is None
    assert cleaner.check(CORRUPTED_TS, 20.0) is RejectReason.TIME_IMPLAUSIBLE
    assert cleaner.check(now + 2 * MAX_FUTURE_S, 20.0) is RejectReason.TIME_IMPLAUSIBLE
    assert cleaner.rejected[RejectReason.TIME_IMPLAUSIBLE] == 2
    # The corrupted reading is not the reference: the next good one is accepted.
    assert cleaner.check(now, 21.0) is None
    assert cleaner.last_accepted_ts == now


def test_recorded_and_slightly_early_clocks_pass() -> None:
    cleaner = ChannelCleaner(CleaningConfig())
    now = time.time()
    # Replayed history (2014) and a device clock an hour ahead are data, not corruption.
    assert cleaner.check(1.4e9, 1.0) is None
    assert cleaner.check(now + 3600.0, 1.0) is None
    assert cleaner.rejected[RejectReason.TIME_IMPLAUSIBLE] == 0


def test_store_keeps_its_readings_when_a_corrupted_time_is_cleaned(tmp_path: Path) -> None:
    """The pipeline's order, cleaning before the store: nothing is deleted by age."""
    cleaner = ChannelCleaner(CleaningConfig())
    now = time.time()
    with Store(tmp_path / "store.db", StoreConfig(readings_max_age_s=3600.0)) as store:
        for i, ts in enumerate([now - 60.0, now - 30.0, CORRUPTED_TS, now - 1.0]):
            if cleaner.check(ts, float(i)) is None:
                store.add_sample(ts, "temp", float(i), None, None)
        store.flush()
        deleted = store.enforce_limits()
        assert deleted["readings_age"] == 0
        assert [r.ts for r in store.readings("temp", None, 10)] == [
            now - 60.0,
            now - 30.0,
            now - 1.0,
        ]

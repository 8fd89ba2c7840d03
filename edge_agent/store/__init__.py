"""The durable local store (SQLite, WAL): readings, summaries, alarms, outbox.

See docs/store.md.
"""

from edge_agent.store.config import StoreConfig
from edge_agent.store.sqlite import (
    ALARMS_FIRST,
    InflightBatch,
    OutboxKind,
    OutboxRow,
    ReadingRow,
    Store,
    StoreStats,
)
from edge_agent.store.summary import Summary, SummaryAccumulator

__all__ = [
    "ALARMS_FIRST",
    "InflightBatch",
    "OutboxKind",
    "OutboxRow",
    "ReadingRow",
    "Store",
    "StoreConfig",
    "StoreStats",
    "Summary",
    "SummaryAccumulator",
]

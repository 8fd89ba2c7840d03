"""The durable local store (SQLite, WAL): readings, summaries, alarms, outbox.

See docs/store.md.
"""

from edge_agent.store.config import StoreConfig
from edge_agent.store.outbox import ALARMS_FIRST, OutboxKind, OutboxRow
from edge_agent.store.queries import ReadingRow
from edge_agent.store.sqlite import Store
from edge_agent.store.stats import StoreStats
from edge_agent.store.summary import Summary, SummaryAccumulator
from edge_agent.store.sync_staging import InflightBatch

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

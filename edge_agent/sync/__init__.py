"""Cloud sync: the outbox to the cloud exactly once, and the twin (docs/sync.md)."""

from edge_agent.sync.config import SyncConfig
from edge_agent.sync.twin import DeviceReport, Twin
from edge_agent.sync.worker import SyncState, SyncWorker

__all__ = ["DeviceReport", "SyncConfig", "SyncState", "SyncWorker", "Twin"]

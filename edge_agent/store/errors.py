"""Errors of the local store, named for what the caller should do.

``AlarmNotFound`` and ``TransientError`` live in ``edge_agent.errors`` and are
re-exported here so store callers have one place to import from.
"""

from __future__ import annotations

from edge_agent.errors import AlarmNotFound, TransientError

__all__ = ["AlarmNotFound", "StoreSchemaTooNew", "StoreUnavailable", "StoreUnreadable"]


class StoreUnavailable(TransientError):
    """The database could not be read or written right now (disk full, I/O error,
    locked by another process): retry later. A failed ``flush`` keeps its rows buffered."""


class StoreUnreadable(RuntimeError):
    """The file is not a SQLite database or is corrupt: fatal. Move the file aside (the
    agent then starts with an empty store)."""


class StoreSchemaTooNew(RuntimeError):
    """The file was written by a newer agent (its schema version is above the one this
    agent knows): fatal. Upgrade the agent, or move the file aside."""

    def __init__(self, found: int, known: int) -> None:
        self.found = found
        self.known = known
        super().__init__(f"store schema version {found} is newer than this agent's ({known})")

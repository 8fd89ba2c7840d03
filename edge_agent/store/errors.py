"""Errors of the local store, named for what the caller should do.

A missing alarm is ``edge_agent.errors.AlarmNotFound`` (the alarm engine raises it too).
"""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError, TransientError


class StoreUnavailable(TransientError):
    """The database could not be read or written right now (disk full, I/O error,
    locked by another process): retry later. A failed ``flush`` keeps its rows buffered."""


class StoreUnreadable(EdgeAgentError):
    """The file is not a SQLite database or is corrupt: fatal. Move the file aside (the
    agent then starts with an empty store)."""


class StoreSchemaTooNew(EdgeAgentError):
    """The file was written by a newer agent (its schema version is above the one this
    agent knows): fatal. Upgrade the agent, or move the file aside."""

    def __init__(self, found: int, known: int) -> None:
        self.found = found
        self.known = known
        super().__init__(f"store schema version {found} is newer than this agent's ({known})")

"""Errors of the sources, named for what the caller should do.

Bad input (a garbage line, a bad CSV row) and a lost device are never errors: sources
count them in ``SourceHealth.counters`` and carry on. What is raised here means the
source cannot run as configured, and retrying will not help.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.errors import EdgeAgentError

__all__ = ["ReplayFileInvalid", "SourceBusy", "SourceFatal"]


class SourceFatal(EdgeAgentError):
    """The source cannot run with this config: fix the config or the file, then restart."""


class ReplayFileInvalid(SourceFatal, ValueError):
    """A replay file is missing, unreadable, or lacks a configured column (fatal).

    ``path`` is the file; the message names it and says what is wrong.
    """

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class SourceBusy(EdgeAgentError):
    """``stream()`` was called while a stream of the same source is still running: a source
    has one consumer (fix the caller)."""

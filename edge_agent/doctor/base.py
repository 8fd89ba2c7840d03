"""What a check reports."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    """Works now, but will not for long, or not everywhere."""
    FAIL = "fail"
    """The agent will not work (or not fully) until fixed."""
    SKIP = "skip"
    """Not applicable to this config."""


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    status: Status
    message: str
    fix: str | None = None
    """The command or edit that fixes it; None when nothing needs fixing."""

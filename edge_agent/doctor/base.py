"""What a check is given and what it reports: one signature for every check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from edge_agent.config import LoadedConfig
from edgetwin_common.errors import ConfigInvalid


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


@dataclass(frozen=True, slots=True)
class DoctorContext:
    """What every check is given: the config (loaded once for all of them) and the
    service user whose permissions count."""

    config_path: Path
    user: str
    loaded_config: LoadedConfig | None
    """None when the config does not load (``config_problem`` says why); then only the
    checks that need no config run."""
    config_problem: ConfigInvalid | None = None

    @property
    def loaded(self) -> LoadedConfig:
        """The loaded config, for a check listed with ``needs_config``. Raises
        RuntimeError without one (a check listed wrongly: a programming error)."""
        if self.loaded_config is None:
            raise RuntimeError("this check needs the config: list it with needs_config")
        return self.loaded_config


@dataclass(frozen=True, slots=True)
class DoctorCheck:
    """One entry of the doctor's list: its name and its function."""

    name: str
    run: Callable[[DoctorContext], list[Finding]]
    needs_config: bool = True
    """Skipped (no finding) when the config does not load."""

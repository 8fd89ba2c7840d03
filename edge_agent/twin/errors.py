"""Errors of the twin: a scenario or a state the model cannot be rolled forward from."""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError


class TwinError(EdgeAgentError):
    """The root of the twin's errors."""


class ScenarioInvalid(TwinError, ValueError):
    """A what-if scenario is malformed: the message names the field and what is wrong.

    Attributes:
        field: dotted path of the offending field (e.g. "controls.load.1.minutes").
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class TwinStateIncomplete(TwinError):
    """The recent history lacks a channel, or holds too few periods or a NaN, so the twin
    cannot start from it (per-channel forecasts continue meanwhile)."""


class NotATwinBundle(TwinError):
    """The bundle is a per-channel forecaster, not a twin (its manifest has no ``twin``)."""


class TwinUnavailable(TwinError):
    """The configured twin could not be loaded; the message says why."""

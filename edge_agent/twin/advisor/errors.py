"""Errors of the advisor, named for what the caller should do."""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError

__all__ = ["AdvisorError", "OverrideInvalid", "PredictionFailed"]


class AdvisorError(EdgeAgentError):
    """The root of the advisor's errors."""


class PredictionFailed(AdvisorError):
    """The predictor could not predict (not warmed up, a channel missing or stale, the
    model failed): the advisor falls back to the safe value. The message says why."""


class OverrideInvalid(AdvisorError, ValueError):
    """An operator override is outside the advisor's bounds or not a number: the
    message names the value and the bounds (HTTP 422)."""

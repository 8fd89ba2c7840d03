"""Errors of alarm actions, named for what the caller should do."""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError, TransientError


class DeliveryFailed(TransientError):
    """The receiver could not take the event now (timeout, connection error, HTTP 5xx or
    429): retry with backoff. ``retry_after_s``: the receiver's Retry-After, if any."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeliveryRejected(EdgeAgentError):
    """The receiver refused the event (HTTP 4xx other than 429, or a redirect): retrying
    will not help; fix the receiver or the action's config."""


class ControlWriteFailed(TransientError):
    """A control value could not be written (the port is gone, its buffer is full, an
    alarm interlock holds the safe value): the advisor keeps its last value, counts the
    error and tries again at its next step."""

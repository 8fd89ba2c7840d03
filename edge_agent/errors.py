"""Errors of the device agent, named for what the caller should do.

Every class derives from ``EdgeAgentError``; a builtin second base is kept where callers
catch it (``ValueError`` for bad values, ``KeyError`` for a missing id). The packages of
the agent with errors of their own (sources, store, sync, actions, model.ota, simulator)
keep them in their own ``errors.py``, under the same root. Bundle rejections are
``edgetwin_contracts.errors`` (the cloud raises the same ones); config problems are
``edgetwin_common.errors.ConfigInvalid`` (the cloud's config raises it too).
"""

from __future__ import annotations

from edgetwin_common.errors import EdgetwinError

__all__ = [
    "AlarmNotFound",
    "BackendUnavailable",
    "EdgeAgentError",
    "InstallFailed",
    "OverrideRefused",
    "TransientError",
    "WindowInvalid",
]


class EdgeAgentError(EdgetwinError):
    """The root of every error the device agent raises on purpose."""


class BackendUnavailable(EdgeAgentError):
    """No inference backend could be imported: install ai-edge-litert (or tflite-runtime).

    Fatal for inference; the message lists why each backend failed to import.
    """


class WindowInvalid(EdgeAgentError, ValueError):
    """An input window has the wrong length or holds NaN/inf: fix the caller, skip the sample."""


class AlarmNotFound(EdgeAgentError, KeyError):
    """No alarm with that id (HTTP 404)."""


class OverrideRefused(EdgeAgentError, ValueError):
    """A desired-state change to an alarm rule is refused (the message says why); the
    rule keeps its configured values and the twin reports the refusal to the cloud."""


class TransientError(EdgeAgentError):
    """Worth retrying later (a device gone, a peer unreachable): back off and retry."""


class InstallFailed(EdgeAgentError):
    """``edge-agent install``: a step could not be done; the message says which and how
    to fix it."""

"""Errors of the device agent, named for what the caller should do.

Bundle rejections come from ``edgetwin_contracts.errors`` (the cloud raises the same
ones) and are re-exported here so device code has one place to import from.
"""

from __future__ import annotations

from edgetwin_contracts.configcheck import ConfigInvalid, ConfigProblem
from edgetwin_contracts.errors import (
    BundleIncomplete,
    BundleRejected,
    BundleTooLarge,
    GoldenVectorMismatch,
    KeyInvalid,
    ManifestInvalid,
    ModelHashMismatch,
    ModelSizeMismatch,
    ModelUnloadable,
    SchemaVersionUnsupported,
    SignatureInvalid,
    SignatureMissing,
    TensorSpecMismatch,
)

__all__ = [
    "AlarmNotFound",
    "BackendUnavailable",
    "BundleIncomplete",
    "BundleRejected",
    "BundleTooLarge",
    "ConfigInvalid",
    "ConfigProblem",
    "GoldenVectorMismatch",
    "KeyInvalid",
    "ManifestInvalid",
    "ModelHashMismatch",
    "ModelSizeMismatch",
    "ModelUnloadable",
    "SchemaVersionUnsupported",
    "SignatureInvalid",
    "SignatureMissing",
    "TensorSpecMismatch",
    "TransientError",
    "WindowInvalid",
]


class BackendUnavailable(RuntimeError):
    """No inference backend could be imported: install ai-edge-litert (or tflite-runtime).

    Fatal for inference; the message lists why each backend failed to import.
    """


class WindowInvalid(ValueError):
    """An input window has the wrong length or holds NaN/inf: fix the caller, skip the sample."""


class AlarmNotFound(KeyError):
    """No alarm with that id (HTTP 404)."""


class TransientError(Exception):
    """Worth retrying later (a device gone, a peer unreachable): back off and retry."""

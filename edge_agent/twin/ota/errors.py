"""Every way a twin release can be refused beyond the model OTA's own (all
``UpdateRejected``, so the manager reports them alike)."""

from __future__ import annotations

from edge_agent.model.ota.errors import UpdateRejected


class NotATwinRelease(UpdateRejected):
    """The release is a per-channel forecaster bundle (its manifest has no ``twin``)."""

    reason = "not a twin bundle"


class TwinMismatch(UpdateRejected):
    """The twin is for other channels, controls or another period than this device's
    config and running twin."""

    reason = "not a twin for this device"

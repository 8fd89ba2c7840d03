"""Whether a verified twin bundle may replace the twin in service (docs/ota.md, "The
twin's releases")."""

from __future__ import annotations

import math
from collections.abc import Collection

from edge_agent.model.ota.errors import ArchiveMismatch, Downgrade
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.model import LoadedTwin
from edge_agent.twin.ota.errors import NotATwinRelease, TwinMismatch
from edgetwin_contracts.batch import ModelRelease
from edgetwin_contracts.manifest import Manifest, version_key

__all__ = ["check_twin_release"]


def check_twin_release(
    manifest: Manifest,
    release: ModelRelease,
    running: LoadedTwin | None,
    config: TwinConfig,
    device_channels: Collection[str],
) -> None:
    """A twin release fits this device: its manifest is the release's version and a
    twin; its controls are the [twin] controls; its channels (in order) and period are
    the running twin's (the state, the advisor and the guard read the same periods), or
    with no twin running, channels this device has (``device_channels``); not older
    than the running twin unless the cloud asks for a rollback.

    Raises ArchiveMismatch, NotATwinRelease, TwinMismatch, Downgrade; each message says
    what differs.
    """
    version = manifest.model.version
    if version != release.version:
        raise ArchiveMismatch(
            f"the bundle's manifest says version {version}, the release {release.version}"
        )
    spec = manifest.twin
    if spec is None:
        raise NotATwinRelease(
            f"{manifest.model.name} {version} is a per-channel forecaster bundle; "
            "desired.twin must name a twin bundle (desired.model is for forecasters)"
        )
    channels = [c.name for c in spec.channels]
    if spec.controls != config.controls:
        raise TwinMismatch(f"its controls are {spec.controls}, [twin] controls {config.controls}")
    period = manifest.input.sample_period_s
    if running is not None:
        running_channels = running.model.channels
        if channels != running_channels:
            raise TwinMismatch(
                f"its channels are {channels}, the running twin's {running_channels}"
            )
        if period is None or not math.isclose(period, running.period_s):
            raise TwinMismatch(
                f"its period is {period} s, the running twin's {running.period_s:g} s"
            )
        running_version = running.manifest.model.version
        if version_key(version) < version_key(running_version) and not release.is_rollback:
            raise Downgrade(
                f"twin {version} < running twin {running_version} and the cloud did not "
                "ask for a rollback"
            )
    else:
        unknown = [c for c in channels if c not in device_channels]
        if unknown:
            raise TwinMismatch(
                f"its channels {unknown} are not channels of this device "
                f"({sorted(device_channels)})"
            )

"""Whether a verified bundle may replace the running model in place (docs/ota.md)."""

from __future__ import annotations

from collections.abc import Mapping

from edge_agent.model.bundle import LoadedModel
from edge_agent.model.ota.errors import Downgrade, Incompatible, PeriodMismatch
from edge_agent.pipeline.aggregate import feed_refusal
from edgetwin_contracts.manifest import Manifest, version_key

__all__ = ["check_replacement"]


def check_replacement(
    manifest: Manifest,
    running: LoadedModel,
    *,
    is_rollback: bool,
    feeds: Mapping[str, float | None] | None = None,
) -> None:
    """Whether a verified bundle may replace the running model: not older unless the
    cloud asks for a rollback (anti-rollback), same window length and horizons (alarm
    rules select horizons), and a period every channel can feed (``feeds``: channel ->
    seconds between its samples, ``Pipeline.feed_periods``). Raises Downgrade,
    Incompatible (also for a twin bundle) or PeriodMismatch."""
    version = manifest.model.version
    if manifest.twin is not None:
        raise Incompatible(
            f"{manifest.model.name} {version} is a twin bundle: the cloud offers twins as "
            'desired.twin (docs/ota.md, "The twin\'s releases"), not desired.model'
        )
    running_version = running.manifest.model.version
    if version_key(version) < version_key(running_version) and not is_rollback:
        raise Downgrade(
            f"{version} < running {running_version} and the cloud did not ask for a rollback"
        )
    forecaster = running.forecaster
    if manifest.input.window_length != forecaster.window_length:
        raise Incompatible(
            f"window_length {manifest.input.window_length}, running model "
            f"{forecaster.window_length}"
        )
    if tuple(manifest.output.horizons) != forecaster.horizons:
        raise Incompatible(
            f"horizons {manifest.output.horizons}, running model {list(forecaster.horizons)} "
            "(alarm rules select horizons)"
        )
    refusal = feed_refusal(manifest.input.sample_period_s, feeds or {})
    if refusal is not None:
        raise PeriodMismatch(refusal)

"""Per-device fine-tune of the twin from the device's synced summaries.

The fleet pretrain is the shipped default twin (trained on the pump's physics,
``model_export.twin_default``); a device's twin starts from its float32 Keras model and
keeps its normalization, and is fine-tuned on the device's own period means: the
summaries merged into the twin's periods, cut into series at every gap (a period some
channel lacks) and into pieces of ``SERIES_PERIODS``, the last pieces held out for the
uncertainty band. The result is a signed twin bundle, written where the cloud's what-if
looks for the device's twin (``device_twin_dir``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from cloud_sync.twin import MAX_LIMIT, list_summaries
from edge_agent.twin.model import LoadedTwin
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE, default_twin_public_key
from edgetwin_contracts.manifest import TwinSpec

FloatArray = npt.NDArray[np.float64]

SERIES_PERIODS = 240
"""Periods per training series (4 hours at a 1-minute period)."""


@dataclass(frozen=True, slots=True)
class TwinFineTune:
    twin: LoadedTwin
    series: int
    periods: int


def device_twin_dir(reports_dir: Path, device: str) -> Path:
    """Where a device's fine-tuned twin bundle lives: ``<reports_dir>/<device>/twin``."""
    return reports_dir / device / "twin"


def synced_periods(
    engine: Engine, device: str, channels: list[str], period_s: float
) -> list[FloatArray]:
    """The device's synced summaries as runs of back-to-back complete periods, each
    (periods, channels) in ``channels`` order."""
    sums: dict[int, dict[str, list[float]]] = {}
    for channel in channels:
        since: float | None = -math.inf
        while True:
            page = list_summaries(engine, device, channel, since, MAX_LIMIT)
            for s in page:
                k = math.floor(s.start / period_s + 1e-9)
                acc = sums.setdefault(k, {}).setdefault(channel, [0.0, 0.0, 0.0])
                acc[0] += s.mean * s.count
                acc[1] += s.count
                acc[2] += s.interval_s
            if len(page) < MAX_LIMIT:
                break
            since = page[-1].start
    complete = sorted(
        k
        for k, per in sums.items()
        if all(c in per and per[c][2] >= period_s * (1 - 1e-9) for c in channels)
    )
    runs: list[list[int]] = []
    for k in complete:
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return [
        np.array([[sums[k][c][0] / sums[k][c][1] for c in channels] for k in run]) for run in runs
    ]


def fine_tune_device_twin(
    engine: Engine,
    device: str,
    reports_dir: Path,
    key: Ed25519PrivateKey,
    version: str,
    *,
    epochs: int = 10,
) -> TwinFineTune:
    """Fine-tune the default twin on ``device``'s synced data; write the signed bundle to
    ``device_twin_dir(reports_dir, device)``.

    Raises DeviceNotFound, ExportError (too little synced data: the message says how
    much is needed).
    """
    from edgetwin_contracts.bundle import read_verified
    from model_export.bundle import Release
    from model_export.errors import ExportError
    from model_export.train import TrainSettings
    from model_export.twin_default import DEFAULT_TWIN_NAME, load_twin_reference
    from model_export.twin_export import TwinRecipe, build_twin
    from model_export.twin_rollout import RolloutSettings

    base: TwinSpec | None = read_verified(
        DEFAULT_TWIN_BUNDLE, default_twin_public_key()
    ).manifest.twin
    assert base is not None  # the shipped default is a twin
    period = 60.0
    channels = [c.name for c in base.channels]
    recipe = TwinRecipe(
        channels=tuple(channels),
        controls=tuple(base.controls),
        period_s=period,
        window_steps=base.window_steps,
        horizon_steps=base.horizon_steps,
        holdout_fraction=0.25,
        train=TrainSettings(
            hidden=(64, 64),
            epochs=epochs,
            batch_size=256,
            learning_rate=3e-4,
            patience=3,
            loss="mse",
            verbose=0,
        ),
        # as the fleet model was: then on its own roll-outs (model_export/twin_rollout.py)
        rollout=RolloutSettings(epochs=max(1, epochs // 3)),
    )
    need = base.window_steps + base.horizon_steps + 2
    pieces = [
        run[i : i + SERIES_PERIODS]
        for run in synced_periods(engine, device, channels, period)
        for i in range(0, len(run), SERIES_PERIODS)
    ]
    pieces = [p for p in pieces if len(p) >= need]
    if len(pieces) < 2:
        raise ExportError(
            f"{device}: the synced summaries hold {len(pieces)} stretch(es) of {need}+ "
            f"complete {period:g} s periods of {channels}; a twin fine-tune needs 2"
        )
    length = min(len(p) for p in pieces)
    series = np.stack([p[-length:] for p in pieces])
    model = load_twin_reference()
    twin, _ = build_twin(
        series,
        recipe,
        Release(
            name=f"{DEFAULT_TWIN_NAME}-{device}",
            version=version,
            description=f"The default pump twin fine-tuned on {device}'s synced summaries.",
        ),
        key,
        device_twin_dir(reports_dir, device),
        dataset=f"synced summaries of {device}: {len(series)} series of {length} periods",
        initial_model=model,
        base=base,
        force=True,
    )
    return TwinFineTune(twin, len(series), length)

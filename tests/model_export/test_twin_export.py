"""A twin bundle built end to end on a tiny pump corpus: Keras -> real int8 conversion ->
residual band from int8 roll-forwards -> signed bundle -> the device's load_twin."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from edgetwin_contracts.signing import generate_private_key
from model_export.bundle import Release
from model_export.errors import BundleExists, ExportError
from model_export.train import TrainSettings
from model_export.twin_corpus import CHANNELS, CONTROLS, CorpusSettings, pump_corpus
from model_export.twin_export import TwinRecipe, build_twin
from model_export.twin_rollout import RolloutSettings
from tests.conftest import require

RECIPE = TwinRecipe(
    channels=CHANNELS,
    controls=CONTROLS,
    period_s=60.0,
    window_steps=4,
    horizon_steps=10,
    holdout_fraction=0.25,
    train=TrainSettings(hidden=(16,), epochs=1, batch_size=64, loss="mse", verbose=0),
    rollout=RolloutSettings(steps=3, epochs=1, samples_per_series=8),
)


def test_a_twin_bundle_round_trips(tmp_path: Path) -> None:
    require(importlib.util.find_spec("tensorflow") is not None, "TensorFlow is not installed")
    series = pump_corpus(CorpusSettings(series=8, periods=60, seed=2))
    key = generate_private_key()
    dest = tmp_path / "twin"
    twin, _ = build_twin(
        series, RECIPE, Release(name="tiny-twin", version="0.1.0"), key, dest, dataset="tiny"
    )
    spec = twin.spec
    assert twin.manifest.kind == "twin" and twin.period_s == 60.0
    assert [c.name for c in spec.channels] == list(CHANNELS)
    assert spec.outputs == list(CHANNELS[:4]) and spec.controls == ["load"]
    assert all(len(v) == 10 for v in spec.residual_std.values())
    assert all(c.step_scale is not None for c in spec.channels[:4])
    twin.model.load_state(series[0, :4])
    path = twin.model.roll(np.full((10, 1), 0.8))
    assert path.shape == (10, 4) and np.all(np.isfinite(path))
    with pytest.raises(BundleExists):
        build_twin(series, RECIPE, Release(name="t", version="1"), key, dest, dataset="tiny")


def test_too_short_a_corpus_is_refused(tmp_path: Path) -> None:
    series = pump_corpus(CorpusSettings(series=3, periods=12, seed=2))
    with pytest.raises(ExportError, match="at least 2 series of 16 periods"):
        build_twin(
            series,
            RECIPE,
            Release(name="t", version="1"),
            generate_private_key(),
            tmp_path / "t",
            dataset="tiny",
        )

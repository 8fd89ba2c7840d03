"""Train tiny -> convert -> bundle -> load -> golden vectors reproduce (TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_agent.model.bundle import check_golden, load_bundle
from edgetwin_contracts.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    ErrorMetrics,
    ValidationMetrics,
)
from edgetwin_contracts.signing import load_public_key
from model_export.convert import check_int8_bound, relative_increase
from model_export.errors import BundleExists, ConversionRefused, ModelInvalid
from model_export.train import sidecar_path

pytestmark = pytest.mark.tensorflow


def test_round_trip_bundle_loads_and_golden_vectors_reproduce(
    tiny_bundle: Path, release_key_dir: Path
) -> None:
    assert sorted(p.name for p in tiny_bundle.iterdir()) == sorted(
        [MODEL_FILE, MANIFEST_FILE, SIGNATURE_FILE]
    )
    loaded = load_bundle(tiny_bundle, load_public_key(release_key_dir / "release.pub"))
    m = loaded.manifest
    assert m.input.window_length == 16
    assert m.input.channels == ["temp_c", "current_a"]
    assert m.input.sample_period_s == 60.0
    assert m.output.horizons == [1, 2, 4]
    assert len(m.golden.vectors) == 5
    assert m.metrics.windows > 0
    check_golden(loaded.forecaster, m, str(tiny_bundle))
    for vector in m.golden.vectors:
        out = loaded.forecaster.forecast(np.asarray(vector.input))
        step = m.quantization.output.scale * _std_eff(vector.input) + 1e-12
        assert np.all(np.abs(out - np.asarray(vector.output)) <= step * 1.0001)
    flat = m.golden.vectors[3].input
    assert len(set(flat)) == 1  # the flat window exercises the std floor


def _std_eff(window: list[float]) -> float:
    x = np.asarray(window)
    return max(float(x.std()), 1e-6, 1e-3 * abs(float(x.mean())))


def test_metrics_compare_float32_and_int8(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / MANIFEST_FILE).read_text())
    metrics = manifest["metrics"]
    f32, q = metrics["float32"]["mae"], metrics["int8"]["mae"]
    assert metrics["int8_mae_increase"] == pytest.approx((q - f32) / f32)


def test_conversion_refused_when_the_int8_bound_is_tiny(
    tiny_model: Path, tiny_csv: Path, release_key_dir: Path, tmp_path: Path
) -> None:
    from model_export.workflows import convert_to_bundle

    dest = tmp_path / "refused"
    with pytest.raises(ConversionRefused) as info:
        convert_to_bundle(
            model_path=tiny_model,
            data_path=tiny_csv,
            dest=dest,
            key_path=release_key_dir / "release.key",
            name=None,
            version="0.0.1",
            description="",
            max_int8_increase=-0.99,
            representative_count=100,
            seed=1,
            force=False,
            say=lambda _: None,
        )
    assert info.value.bound == -0.99
    assert "float32" in str(info.value) and "int8" in str(info.value)
    assert not dest.exists()


def test_existing_bundle_is_not_overwritten_without_force(
    tiny_bundle: Path, tiny_model: Path, tiny_csv: Path, release_key_dir: Path
) -> None:
    from model_export.workflows import convert_to_bundle

    before = (tiny_bundle / MANIFEST_FILE).read_bytes()
    with pytest.raises(BundleExists, match="--force"):
        convert_to_bundle(
            model_path=tiny_model,
            data_path=tiny_csv,
            dest=tiny_bundle,
            key_path=release_key_dir / "release.key",
            name=None,
            version="0.0.2",
            description="",
            max_int8_increase=10.0,
            representative_count=100,
            seed=1,
            force=False,
            say=lambda _: None,
        )
    assert (tiny_bundle / MANIFEST_FILE).read_bytes() == before


def test_convert_needs_the_training_sidecar(tiny_model: Path, tmp_path: Path) -> None:
    from model_export.train import load_model

    lonely = tmp_path / "lonely.keras"
    lonely.write_bytes(tiny_model.read_bytes())
    with pytest.raises(ModelInvalid, match="sidecar"):
        load_model(lonely)
    assert sidecar_path(tiny_model).is_file()


def _metrics(float32_mae: float, int8_mae: float) -> ValidationMetrics:
    return ValidationMetrics(
        holdout="test",
        windows=10,
        float32=ErrorMetrics(mae=float32_mae, rmse=float32_mae),
        int8=ErrorMetrics(mae=int8_mae, rmse=int8_mae),
        int8_mae_increase=relative_increase(float32_mae, int8_mae),
    )


def test_the_int8_bound_is_relative_with_an_absolute_floor() -> None:
    # A near-flat series: float32 is almost perfect, int8 rounding adds 24 % of almost nothing.
    flat = _metrics(0.025, 0.031)
    with pytest.raises(ConversionRefused):
        check_int8_bound(flat, 0.03)
    check_int8_bound(flat, 0.03, abs_floor=0.01)
    # A real loss is refused whatever the floor.
    with pytest.raises(ConversionRefused):
        check_int8_bound(_metrics(0.5, 0.6), 0.03, abs_floor=0.01)
    check_int8_bound(_metrics(0.5, 0.51), 0.03, abs_floor=0.0)

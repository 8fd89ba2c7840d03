"""Shared fixtures of the model_export tests.

The TensorFlow-backed fixtures train once per session on a tiny dataset (1 epoch): the
tests check behaviour (files, verification, golden vectors), never model quality.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from model_export.dataset import WindowSpec
from model_export.train import TrainSettings
from tests.conftest import require

TINY_SPEC = WindowSpec(window_length=16, horizons=(1, 2, 4), stride=2, holdout_fraction=0.25)
TINY_TRAIN = TrainSettings(hidden=(16, 8), epochs=1, batch_size=64, verbose=0)


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-channel dataset CSV of 300 rows (synthetic series)."""
    from model_export.synthetic import generate_corpus

    a, b = generate_corpus(seed=3, n_series=2, length=300)
    lines = ["timestamp,temp_c,current_a"]
    lines += [f"{1_700_000_000 + 60 * i},{float(a[i])!r},{float(b[i])!r}" for i in range(300)]
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_csv: Path) -> Path:
    """A .keras model (and its sidecar) built from ``tiny_csv`` in one epoch."""
    require(
        importlib.util.find_spec("tensorflow") is not None,
        "TensorFlow is not installed (pip install 'edgetwin[export]')",
    )
    from model_export.workflows import build_from_csv

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_from_csv(tiny_csv, path, TINY_SPEC, TINY_TRAIN, say=lambda _: None)
    return path


@pytest.fixture(scope="session")
def release_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with release.key / release.pub."""
    from model_export.pipeline import create_keypair

    directory = tmp_path_factory.mktemp("keys")
    create_keypair(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bundle(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model: Path,
    tiny_csv: Path,
    release_key_dir: Path,
) -> Path:
    """A signed bundle converted from ``tiny_model`` (int8 bound disabled: 1 epoch)."""
    from model_export.workflows import convert_to_bundle

    dest = tmp_path_factory.mktemp("bundles") / "tiny"
    convert_to_bundle(
        model_path=tiny_model,
        data_path=tiny_csv,
        dest=dest,
        key_path=release_key_dir / "release.key",
        name="tiny",
        version="0.0.1",
        description="test",
        max_int8_increase=10.0,
        representative_count=200,
        seed=1,
        force=False,
        say=lambda _: None,
    )
    return dest

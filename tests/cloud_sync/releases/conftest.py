"""Release fixtures: a bundle store trusting the test release key, bundles per version,
a real twin bundle (built once per session by model_export.twin_export), and a way to
make a device report what its OTA did."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text, update

from cloud_sync.db.models import Device
from cloud_sync.registry import add_device
from cloud_sync.releases.store import BundleStore
from edgetwin_contracts.batch import ReportedState
from tests.cloud_sync.conftest import reported
from tests.conftest import require

TWIN_NAME = "pump-twin"
INITIAL_TWIN = {"name": TWIN_NAME, "version": "0.1.0", "sha256": "ef" * 32}
"""The twin every device of ``fleet`` reports in service at first."""


@pytest.fixture(scope="session")
def twin_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real twin bundle of the pump's channels (Keras -> int8 TFLite -> residual band
    -> signed bundle, ``model_export.twin_export.build_twin``), built once per session on
    a tiny corpus in one epoch and signed with a throwaway key: publishing re-signs it
    with the release key. Its manifest says model.version 0.1.0."""
    require(importlib.util.find_spec("tensorflow") is not None, "TensorFlow is not installed")
    from edgetwin_contracts.signing import generate_private_key
    from model_export.bundle import Release
    from model_export.train import TrainSettings
    from model_export.twin_corpus import CHANNELS, CONTROLS, CorpusSettings, pump_corpus
    from model_export.twin_export import TwinRecipe, build_twin
    from model_export.twin_rollout import RolloutSettings

    recipe = TwinRecipe(
        channels=CHANNELS,
        controls=CONTROLS,
        period_s=60.0,
        window_steps=4,
        horizon_steps=60,
        holdout_fraction=0.25,
        train=TrainSettings(hidden=(16,), epochs=1, batch_size=64, loss="mse", verbose=0),
        rollout=RolloutSettings(steps=3, epochs=1, samples_per_series=8),
    )
    dest = tmp_path_factory.mktemp("twin") / "bundle"
    series = pump_corpus(CorpusSettings(series=8, periods=90, seed=2))
    build_twin(
        series,
        recipe,
        Release(name=TWIN_NAME, version="0.1.0"),
        generate_private_key(),
        dest,
        dataset="tiny pump corpus",
    )
    return dest


@pytest.fixture
def rel_engine(engine: Engine) -> Iterator[Engine]:
    """The migrated engine, with the release tables empty on PostgreSQL too."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE releases RESTART IDENTITY CASCADE"))
    yield engine


@pytest.fixture
def store(tmp_path: Path, release_key: Ed25519PrivateKey) -> BundleStore:
    return BundleStore(tmp_path / "bundles", release_key.public_key())


@pytest.fixture
def bundle_for(make_bundle: Callable[..., Path]) -> Callable[[str], Path]:
    """A bundle of the shipped model with manifest model.version = version, signed with
    the test release key."""

    def build(version: str) -> Path:
        def edit(data: dict[str, Any]) -> None:
            data["model"]["version"] = version

        return make_bundle(edit_manifest=edit)

    return build


@pytest.fixture
def fleet(rel_engine: Engine) -> list[str]:
    """Ten devices, dev-0 .. dev-9, each reporting model generic 1.0.0 and the twin
    pump-twin 0.1.0 in service."""
    names = [f"dev-{i}" for i in range(10)]
    for name in names:
        add_device(rel_engine, name)
        report(rel_engine, name, model_version="1.0.0", twin=INITIAL_TWIN)
    return names


def report(
    engine: Engine,
    device: str,
    *,
    model_version: str = "1.0.0",
    model_name: str = "edgetwin-generic-forecaster",
    update: dict[str, Any] | None = None,
    twin: dict[str, Any] | None = None,
    twin_update: dict[str, Any] | None = None,
) -> None:
    """Store a reported state for ``device`` as ingest would (a higher version);
    ``twin``: the twin in service ({name, version, sha256}), ``twin_update``: where its
    twin update stands."""
    body = reported(
        int(time.monotonic_ns()),
        model={"name": model_name, "version": model_version, "sha256": "ab" * 32},
        model_update=update,
        twin=twin,
        twin_update=twin_update,
    )
    state = ReportedState.model_validate(body)
    with engine.begin() as conn:
        conn.execute(
            update_device(device).values(
                reported=state.model_dump(mode="json"), reported_version=state.version
            )
        )


def update_device(name: str) -> Any:
    return update(Device).where(Device.name == name)

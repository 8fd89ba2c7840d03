"""The per-device twin fine-tune from synced summaries (the pump's physics with a
device-specific offset), then the cloud's what-if answering with the device's twin."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from cloud_sync.config import AuthSection, CloudConfig, ReleasesSection
from cloud_sync.http.app import create_app
from cloud_sync.registry import add_device
from cloud_sync.training.twin import device_twin_dir, fine_tune_device_twin, synced_periods
from edgetwin_contracts.signing import generate_private_key, save_keypair
from model_export.errors import ExportError
from model_export.twin_corpus import CHANNELS, CorpusSettings, pump_corpus
from tests.cloud_sync.conftest import ADMIN, ADMIN_TOKEN
from tests.cloud_sync.training.conftest import insert_summaries
from tests.conftest import require


def _sync_pump(engine: Engine, device: str, periods: int, gap_at: int | None = None) -> None:
    series = pump_corpus(CorpusSettings(series=1, periods=periods, seed=21))[0]
    series[:, 3] += 4.0  # this device's ambient runs warmer than the fleet's
    skip = frozenset({gap_at}) if gap_at is not None else frozenset()
    for j, channel in enumerate(CHANNELS):
        insert_summaries(engine, device, channel, series[:, j], skip=skip)


def test_synced_periods_split_at_gaps(db: Engine) -> None:
    add_device(db, "pump-7")
    _sync_pump(db, "pump-7", 100, gap_at=40)
    runs = synced_periods(db, "pump-7", list(CHANNELS), 60.0)
    assert [len(r) for r in runs] == [40, 59]
    assert runs[0].shape[1] == len(CHANNELS)


def test_too_little_synced_data_is_named(db: Engine, tmp_path: Path) -> None:
    add_device(db, "pump-7")
    _sync_pump(db, "pump-7", 60)
    with pytest.raises(ExportError, match="needs 2"):
        fine_tune_device_twin(db, "pump-7", tmp_path, generate_private_key(), "1.0.1")


def test_a_device_twin_answers_the_clouds_what_if(
    db: Engine, config: CloudConfig, tmp_path: Path
) -> None:
    require(importlib.util.find_spec("tensorflow") is not None, "TensorFlow is not installed")
    add_device(db, "pump-7")
    _sync_pump(db, "pump-7", 400)
    key = generate_private_key()
    save_keypair(key, tmp_path / "keys", "release")
    tuned = fine_tune_device_twin(db, "pump-7", config.training.reports_dir, key, "1.0.1", epochs=1)
    assert tuned.series >= 2 and tuned.twin.manifest.model.version == "1.0.1"
    assert (device_twin_dir(config.training.reports_dir, "pump-7") / "model.tflite").is_file()
    spec = tuned.twin.spec
    assert [c.name for c in spec.channels] == list(CHANNELS)
    assert all(len(v) == spec.horizon_steps for v in spec.residual_std.values())
    cloud = config.model_copy(
        update={
            "releases": ReleasesSection(public_key=tmp_path / "keys" / "release.pub"),
            "auth": AuthSection(admin_token=SecretStr(ADMIN_TOKEN)),
        }
    )
    with TestClient(create_app(cloud, db)) as client:
        body = {"controls": {"load": [{"value": 0.8, "minutes": 20}]}}
        got = client.post("/v1/devices/pump-7/whatif", json=body, headers=ADMIN)
    assert got.status_code == 200, got.text
    assert got.json()["twin_source"].startswith("device twin edgetwin-pump-twin-pump-7 1.0.1")
    current = next(c for c in got.json()["answer"]["channels"] if c["channel"] == "current")
    assert np.isfinite(current["values"]).all() and len(current["values"]) == 20


def test_the_cli_names_what_is_missing(
    db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloud_sync.cli import main

    add_device(db, "pump-7")
    _sync_pump(db, "pump-7", 60)
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    assert main(["twin-finetune", "pump-7", "--version", "1.0.1", "--database-url", url]) == 1
    assert "set [releases] private_key" in capsys.readouterr().err
    save_keypair(generate_private_key(), tmp_path, "release")
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'[releases]\nprivate_key = "{tmp_path / "release.key"}"\n'
        f'[training]\nreports_dir = "{tmp_path / "reports"}"\n'
    )
    args = ["twin-finetune", "pump-7", "--version", "1.0.1", "--config", str(config)]
    assert main([*args, "--database-url", url]) == 1
    assert "needs 2" in capsys.readouterr().err

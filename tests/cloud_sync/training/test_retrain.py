"""Real retrains: fleet pretrain and per-device fine-tunes on a LocalCluster of two
workers, int8 export, reports, decisions, and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine

from cloud_sync.cli import main
from cloud_sync.config import CloudConfig
from cloud_sync.training.decision import Verdict
from cloud_sync.training.deployed import resolve_deployed
from cloud_sync.training.fanout import dask_client
from cloud_sync.training.retrain import retrain
from edgetwin_contracts.manifest import parse_manifest
from tests.cloud_sync.training.conftest import insert_summaries, report_model

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_workers() -> Iterator[Any]:
    with dask_client(None, n_workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        yield client


def test_fleet_retrain_on_two_workers(
    db: Engine,
    config: CloudConfig,
    device_with_data: Callable[..., str],
    two_workers: Any,
) -> None:
    device_with_data("a", seed=1)
    device_with_data("b", seed=2)
    device_with_data("c", seed=3, channels=1)
    device_with_data("tiny", n=60)
    reports = config.training.reports_dir

    outcome = retrain(db, config, client=two_workers, publisher=None, progress=False)

    by_device = {d.device: d for d in outcome.decisions}
    assert set(by_device) == {"a", "b", "c", "tiny"}
    assert by_device["tiny"].verdict is Verdict.SKIPPED
    assert "too little data" in by_device["tiny"].reason
    assert json.loads((reports / "tiny" / "skipped.json").read_text())["verdict"] == "skipped"
    assert (reports / "fleet" / "fleet.keras").is_file()
    for name in ("a", "b", "c"):
        d = by_device[name]
        assert d.verdict in (Verdict.PROMOTED, Verdict.NOT_PROMOTED), d.reason
        assert d.version == "1.0.1" and d.report_dir == reports / name / "1.0.1"
        assert (d.report_dir / "forecast.png").read_bytes()[:8] == PNG_MAGIC
        report = (d.report_dir / "report.md").read_text()
        assert "| deployed edgetwin-generic-forecaster 1.0.0 (int8) |" in report
        assert "training windows" in report
        # Horizons in time at the summary interval (60 s), as the device runs them.
        assert "| 16 (16 min) |" in report and "| 1 (60 s) |" in report
        decision = json.loads((d.report_dir / "decision.json").read_text())
        assert decision["verdict"] == d.verdict.value and decision["reason"] == d.reason
        assert decision["deployed"]["scores"]["mae"] > 0
        # Both starts (fleet model, shipped generic model) were fine-tuned; the one that
        # validated better on the device's own windows is the candidate.
        losses = decision["start_val_losses"]
        assert set(losses) == {"fleet", "generic"}
        assert decision["start"] == min(losses, key=losses.get)
        assert "| fine-tune start |" in report
        manifest = parse_manifest((d.report_dir / "bundle" / "manifest.json").read_bytes(), "b")
        assert manifest.model.name == f"edgetwin-{name}" and manifest.model.version == "1.0.1"
        assert manifest.input.sample_period_s == 60.0
        assert manifest.input.channels == (["ch0"] if name == "c" else ["ch0", "ch1"])

    # The device now runs its release: the comparison is against that bundle.
    bundle = reports / "a" / "1.0.1" / "bundle"
    sha = parse_manifest((bundle / "manifest.json").read_bytes(), "a").file.sha256
    report_model(db, "a", "edgetwin-a", "1.0.1", sha)
    deployed = resolve_deployed(db, "a", reports)
    assert (deployed.name, deployed.version, deployed.note) == ("edgetwin-a", "1.0.1", "")

    # A margin no candidate can meet: not promoted, with the reason; next version.
    strict = config.model_copy(
        update={"training": config.training.model_copy(update={"margin": 0.99})}
    )
    (again,) = retrain(
        db, strict, devices=["a"], client=two_workers, publisher=None, progress=False
    ).decisions
    assert again.verdict is Verdict.NOT_PROMOTED
    assert again.reason.startswith("not promoted: held-out MAE")
    assert "margin of 99%" in again.reason
    assert again.version == "1.0.2"
    decision = json.loads((reports / "a" / "1.0.2" / "decision.json").read_text())
    assert decision["verdict"] == "not_promoted"
    assert decision["deployed"]["version"] == "1.0.1"


def test_cli_fleet_and_device(
    tmp_path: Path, db: Engine, device_with_data: Callable[..., str], capsys: Any
) -> None:
    device_with_data("pump-1", seed=5, channels=1)
    add_tiny = device_with_data("pump-2", n=100, channels=1)
    insert_summaries(db, add_tiny, "extra", np.arange(10.0))
    toml = tmp_path / "cloud.toml"
    toml.write_text(
        "[training]\n"
        f'reports_dir = "{tmp_path / "out"}"\n'
        "n_workers = 1\npretrain_epochs = 1\nfinetune_epochs = 1\nfinetune_learning_rate = 3e-4\n",
        encoding="utf-8",
    )
    base = ["--config", str(toml), "--database-url", f"sqlite:///{tmp_path / 'cloud.db'}"]

    assert main(["retrain", "--fleet", "--no-progress", *base]) == 0
    out = capsys.readouterr().out
    assert "pump-1\t" in out and "pump-2\tskipped\t-\t-\t" in out
    # The twin's line for a device without the twin's channels says so.
    assert "twin:pump-1\tskipped\t-\t-\tno synced summaries of bearing_temp" in out
    # Five columns on every line, as docs/training.md says.
    assert all(len(line.split("\t")) == 5 for line in out.strip().splitlines())

    assert main(["retrain", "--device", "pump-1", "--no-progress", *base]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("pump-1\t") and "\t1.0.2\t" in line
    assert (tmp_path / "out" / "pump-1" / "1.0.2" / "report.md").is_file()

    assert main(["retrain", "--device", "nobody", "--no-progress", *base]) == 1

"""The twin's part of a real retrain: simulated pumps synced through the cloud's ingest
into SQLite, the fleet twin pretrained from the shipped default, per-device fine-tunes
on a LocalCluster of two workers, int8 what-if comparison through LiteRT, reports,
signed bundles, the running twin after a release, and the CLI's lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from cloud_sync.config import CloudConfig, ReleasesSection, TwinRetrainSection
from cloud_sync.training.decision import Verdict
from cloud_sync.training.fanout import dask_client
from cloud_sync.training.retrain import releases_publisher, retrain
from cloud_sync.training.twin import device_twin_dir
from cloud_sync.training.twin_running import resolve_running_twin
from cloud_sync.twin import get_desired
from edge_agent.simulator.faults import Fault, FaultKind
from edge_agent.simulator.pump import SimulatorSettings
from edge_agent.twin.model import load_twin
from edgetwin_contracts.manifest import parse_manifest
from edgetwin_contracts.signing import generate_private_key, load_public_key, save_keypair
from edgetwin_demo.fleet_data import CHANNELS, SimulatedDevice, operator_plan, sync_simulated
from tests.cloud_sync.training.conftest import report_twin

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]
HOURS = 3600.0


@pytest.fixture(scope="module")
def two_workers() -> Iterator[Any]:
    with dask_client(None, n_workers=2) as client:
        yield client


def _pump(name: str, hours: float, seed: int, **kw: Any) -> SimulatedDevice:
    duration = hours * HOURS
    settings = SimulatorSettings(rate_hz=1.0, seed=seed, duration_s=duration, **kw)
    return SimulatedDevice(name, settings, operator_plan(seed, duration))


def _twin_config(config: CloudConfig, tmp_path: Path, **twin: Any) -> CloudConfig:
    save_keypair(generate_private_key(), tmp_path / "keys", "release")
    small = TwinRetrainSection(
        pretrain_epochs=1, finetune_epochs=1, rollout_epochs=1, min_periods=600, **twin
    )
    return config.model_copy(
        update={
            "releases": ReleasesSection(private_key=tmp_path / "keys" / "release.key"),
            "training": config.training.model_copy(
                update={"twin": small, "finetune_from_generic": False}
            ),
        }
    )


def test_the_twin_retrain_on_two_workers(
    db: Engine, config: CloudConfig, tmp_path: Path, two_workers: Any
) -> None:
    overheat = (Fault(FaultKind.OVERHEAT, 4 * HOURS, 1200.0, rate=1.0),)
    sync_simulated(db, _pump("pump-a", 12, seed=1))
    sync_simulated(db, _pump("pump-b", 12, seed=2, faults=overheat))
    sync_simulated(db, _pump("short", 5, seed=3))
    no_load = _pump("no-load", 12, seed=4)
    sync_simulated(db, SimulatedDevice("no-load", no_load.settings, channels=CHANNELS[:4]))
    config = _twin_config(config, tmp_path)
    reports = config.training.reports_dir
    key = load_public_key(tmp_path / "keys" / "release.pub")

    outcome = retrain(db, config, client=two_workers, publisher=None, progress=False)

    twins = {d.device: d for d in outcome.twins}
    assert set(twins) == {"pump-a", "pump-b", "short", "no-load"}
    assert twins["short"].verdict is Verdict.SKIPPED
    assert twins["short"].reason.startswith("too little data: 300 complete 60 s periods")
    assert twins["no-load"].verdict is Verdict.SKIPPED
    assert twins["no-load"].reason.startswith("no synced summaries of load")
    skipped = json.loads((reports / "no-load" / "twins" / "skipped.json").read_text())
    assert skipped["reason"] == twins["no-load"].reason
    # The fleet twin: pretrained on the two usable pumps, saved with its int8 bundle.
    assert outcome.twin_fleet["devices"] == ["pump-a", "pump-b"]
    assert (reports / "fleet" / "twin.keras").is_file()
    fleet = load_twin(reports / "fleet" / "twin-bundle", key)
    assert fleet.manifest.model.name == "edgetwin-fleet-twin"
    for name in ("pump-a", "pump-b"):
        d = twins[name]
        assert d.verdict in (Verdict.PROMOTED, Verdict.NOT_PROMOTED), d.reason
        assert "the running twin's (1 step" in d.reason and "60 min" in d.reason
        assert d.version == "1.0.1" and d.report_dir == reports / name / "twins" / "1.0.1"
        twin = load_twin(d.report_dir / "bundle", key)  # signed, golden vectors pass
        assert twin.manifest.model.name == f"edgetwin-pump-twin-{name}"
        assert [c.name for c in twin.spec.channels] == list(CHANNELS)
        assert all(len(v) == 60 for v in twin.spec.residual_std.values())
        record = json.loads((d.report_dir / "decision.json").read_text())
        assert record["kind"] == "twin" and record["verdict"] == d.verdict.value
        assert record["running"]["name"] == "edgetwin-pump-twin"
        for model in (record["running"]["scores"], record["fleet"], record["candidate"]):
            assert model["marks"] == [1, 10, 30, 60] and model["starts"] > 0
            assert set(model["mae"][1]) == {"bearing_temp", "vibration", "current", "ambient"}
        report = (d.report_dir / "report.md").read_text()
        assert "| model | 1 step | 10 min | 30 min | 60 min |" in report
        assert "| running edgetwin-pump-twin 1.0.0 |" in report
        # A promoted twin answers the cloud's what-if for its device.
        installed = (device_twin_dir(reports, name) / "model.tflite").is_file()
        assert installed == (d.verdict is Verdict.PROMOTED)
    # The forecasters were retrained in the same job.
    assert {d.device for d in outcome.decisions} == {"pump-a", "pump-b", "short", "no-load"}

    # The publish step (the forecasters' publisher): a twin candidate goes out as the
    # device's desired twin, never as its model.
    releases = ReleasesSection(
        dir=tmp_path / "bundles",
        public_key=tmp_path / "keys" / "release.pub",
        private_key=tmp_path / "keys" / "release.key",
    )
    publish = releases_publisher(db, config.model_copy(update={"releases": releases}))
    assert publish is not None
    out = reports / "pump-b" / "twins" / "1.0.1"
    where = publish("pump-b", "1.0.1", out / "bundle", out)
    assert where.startswith("published as release") and "edgetwin-pump-twin-pump-b 1.0.1" in where
    desired = get_desired(db, "pump-b")
    assert desired.twin_version == "1.0.1" and desired.twin is not None
    assert desired.model_version is None

    # pump-a now runs its twin 1.0.1: the next candidate is judged against that bundle,
    # and with a margin no candidate can meet it is not promoted, saying why.
    bundle = reports / "pump-a" / "twins" / "1.0.1" / "bundle"
    sha = parse_manifest((bundle / "manifest.json").read_bytes(), "a").file.sha256
    report_twin(db, "pump-a", "edgetwin-pump-twin-pump-a", "1.0.1", sha)
    running = resolve_running_twin(db, "pump-a", reports)
    assert (running.version, running.note) == ("1.0.1", "")
    strict = _twin_config(config, tmp_path / "again", margin=0.99)
    (again,) = retrain(
        db, strict, devices=["pump-a"], client=two_workers, publisher=None, progress=False
    ).twins
    assert again.verdict is Verdict.NOT_PROMOTED
    assert "not below it by the margin of 99%" in again.reason
    assert again.version == "1.0.2"
    record = json.loads((reports / "pump-a" / "twins" / "1.0.2" / "decision.json").read_text())
    assert record["running"]["version"] == "1.0.1"
    assert record["running"]["source"].startswith("release bundle")


def test_twins_off_leave_twins_alone(db: Engine, config: CloudConfig, two_workers: Any) -> None:
    sync_simulated(db, _pump("pump-a", 5, seed=1))
    off = config.model_copy(
        update={
            "training": config.training.model_copy(
                update={"twin": TwinRetrainSection(enabled=False)}
            )
        }
    )
    outcome = retrain(db, off, client=two_workers, publisher=None, progress=False)
    assert outcome.twins == []
    assert not (config.training.reports_dir / "pump-a" / "twins").exists()

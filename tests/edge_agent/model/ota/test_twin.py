"""The twin hands desired.model to the OTA manager and reports model_update."""

from __future__ import annotations

from pathlib import Path

from edge_agent.sync.twin import NO_RELEASE_REFUSAL, OTA_REFUSAL, DeviceReport, Twin
from edgetwin_contracts.batch import (
    DesiredState,
    ModelRelease,
    ModelReport,
    ModelUpdateReport,
    ModelUpdateState,
)
from tests.edge_agent.sync.helpers import make_engine, open_store

RELEASE = ModelRelease(version="1.1.0", sha256="a" * 64, size_bytes=100, url="/r/x")


class FakeUpdater:
    def __init__(self) -> None:
        self.running_version = "1.0.0"
        self.requested: list[ModelRelease] = []
        self.state = ModelUpdateReport()

    def request(self, release: ModelRelease) -> str | None:
        self.requested.append(release)
        return None

    def report(self) -> ModelUpdateReport:
        return self.state


def describe() -> DeviceReport:
    return DeviceReport("0", ModelReport(name="m", version="1.0.0", sha256="0" * 64), "h")


def test_desired_release_goes_to_the_updater_and_its_outcome_is_reported(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a.db")
    ota = FakeUpdater()
    twin = Twin(store, make_engine(), "1.0.0", describe, ota=ota)
    twin.apply(DesiredState(version=1, model_version="1.1.0", model=RELEASE))
    assert ota.requested == [RELEASE]
    reported = twin.reported()
    assert reported.applied == [] and reported.refused == []  # in progress
    ota.state = ModelUpdateReport(
        state=ModelUpdateState.REJECTED, version="1.1.0", reason="bad signature"
    )
    reported = twin.reported()
    assert reported.model_update == ota.state
    assert [(r.key, r.reason) for r in reported.refused] == [
        ("model_version", "rejected: bad signature")
    ]
    ota.running_version = "1.1.0"
    ota.state = ModelUpdateReport(state=ModelUpdateState.INSTALLED, version="1.1.0")
    assert twin.reported().applied == ["model_version"]
    # A version without a release to fetch, and a twin without OTA, are refused.
    twin.apply(DesiredState(version=2, model_version="2.0.0"))
    assert twin.reported().refused[0].reason == NO_RELEASE_REFUSAL
    plain = Twin(store, make_engine(), "1.0.0", describe)
    plain.apply(DesiredState(version=3, model_version="1.1.0", model=RELEASE))
    assert plain.reported().refused[0].reason == OTA_REFUSAL
    store.close()

"""A twin release through the model OTA's path, with real parts: a real release server
(uvicorn), real int8 twins on LiteRT, the self-test in a real child process, the
simulated pump in a real SQLite store feeding the guard; kept, rolled back, refused."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.model.ota.config import OtaConfig
from edge_agent.model.shipped import DEFAULT_BUNDLE
from edge_agent.sync.twin import NO_TWIN_REFUSAL, DeviceReport, Twin
from edge_agent.twin.ota.manager import DISABLED_REFUSAL, REJECTED_ALARM, ROLLBACK_ALARM
from edge_agent.twin.scenario import Scenario, Segment
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE
from edgetwin_contracts import signing
from edgetwin_contracts.batch import DesiredState, ModelReport, ModelUpdateState
from edgetwin_contracts.manifest import MANIFEST_FILE, SIGNATURE_FILE
from tests.edge_agent.sync.helpers import make_engine, open_store

from ...model.ota.releases import ReleaseServer, tar_bundle
from .conftest import WORSE_VERSION, TwinPublisher, versioned
from .rig import WARM_S, TwinRig, build_rig, settle

SCENARIO = Scenario(controls={"load": [Segment(value=0.9, minutes=30)]})


def rig_at(tmp_path: Path, key_file: Path, server: ReleaseServer, **kw: Any) -> TwinRig:
    rig = build_rig(tmp_path / "device", key_file, server.url, **kw)
    rig.pump.run_until(WARM_S)
    return rig


def version_in_service(rig: TwinRig) -> str:
    twin = rig.service.twin
    assert twin is not None, rig.service.unavailable
    return twin.manifest.model.version


def test_a_twin_release_is_fetched_swapped_guarded_kept_and_started_with(
    tmp_path: Path, key_file: Path, server: ReleaseServer, publish_twin: TwinPublisher
) -> None:
    rig = rig_at(tmp_path, key_file, server)
    shipped = rig.service.twin
    release = publish_twin("1.1.0")

    async def scenario() -> None:
        await rig.manager.update(release)
        # Swapped at once: what-if (and the advisor, the residual) read service.twin.
        assert rig.manager.report().state is ModelUpdateState.GUARDING, rig.manager.report()
        assert version_in_service(rig) == "1.1.0"
        answer = rig.service.what_if(SCENARIO)
        assert all(np.isfinite(c.values).all() for c in answer.channels)
        assert await settle(rig) is ModelUpdateState.INSTALLED
        await rig.manager.aclose()

    asyncio.run(scenario())
    assert server.requests and server.requests[0][0] == "twin-1.1.0"
    report = rig.manager.report()
    # The same int8 model: the same errors in shadow, over the configured periods.
    assert report.guard_samples == 5
    assert report.guard_mae_new == pytest.approx(report.guard_mae_old)
    assert report.guard_mae_new is not None and 0 < report.guard_mae_new < 1
    assert rig.alarms() == []
    pointer = json.loads((rig.twins.root / "current.json").read_text())
    assert pointer["version"] == "1.1.0" and (rig.twins.root / pointer["dir"]).is_dir()
    assert not (rig.twins.root / "trial.json").exists()
    assert rig.manager.in_service() == ModelReport(
        name="edgetwin-pump-twin", version="1.1.0", sha256=shipped.manifest.file.sha256
    )
    rig.close()
    # The next start takes the installed twin (the pointer), not the shipped one.
    again = build_rig(tmp_path / "device", key_file, server.url)
    assert version_in_service(again) == "1.1.0"
    assert again.service.twin is not None and again.service.twin.path.parent == again.twins.root
    again.close()


def test_a_worse_twin_is_rolled_back_marked_bad_and_alarmed(
    tmp_path: Path, key_file: Path, server: ReleaseServer, worse_twin: Path
) -> None:
    rig = rig_at(tmp_path, key_file, server)
    release = server.add("worse", tar_bundle(worse_twin), WORSE_VERSION)

    async def scenario() -> None:
        await rig.manager.update(release)
        assert rig.manager.report().state is ModelUpdateState.GUARDING, rig.manager.report()
        assert version_in_service(rig) == WORSE_VERSION
        assert await settle(rig) is ModelUpdateState.ROLLED_BACK
        await rig.manager.aclose()

    asyncio.run(scenario())
    report = rig.manager.report()
    assert version_in_service(rig) == "1.0.0"
    assert report.reason is not None and "worse by more than 10%" in report.reason
    assert "previous twin 1.0.0" in report.reason
    assert report.guard_mae_new is not None and report.guard_mae_old is not None
    assert report.guard_mae_new > 1.1 * report.guard_mae_old
    assert rig.alarms() == [ROLLBACK_ALARM]
    assert WORSE_VERSION in report.bad_versions
    assert not (rig.twins.root / "current.json").exists()
    # Asked again, it is refused at once; the next start keeps the shipped twin.
    refusal = rig.manager.request(release)
    assert refusal is not None and refusal.startswith("known bad on this device")
    rig.close()
    again = build_rig(tmp_path / "device", key_file, server.url)
    assert version_in_service(again) == "1.0.0"
    assert WORSE_VERSION in again.manager.report().bad_versions
    again.close()


def _channels_renamed(m: dict[str, Any]) -> None:
    m["twin"]["channels"][3]["name"] = "pressure"
    m["input"]["channels"][3] = "pressure"
    m["twin"]["residual_std"]["pressure"] = m["twin"]["residual_std"].pop("ambient")


def _period(m: dict[str, Any]) -> None:
    m["input"]["sample_period_s"] = 30.0


def _runaway(m: dict[str, Any]) -> None:
    # The int8 step is untouched (golden vectors pass); one output step is now 1e300 °C,
    # so the roll-out leaves the reals within a few periods.
    m["twin"]["channels"][0]["step_scale"] = 1e300


REFUSALS = {
    "wrong-channels": ("1.1.0", _channels_renamed, r"not a twin for this device: its channels "),
    "wrong-period": ("1.1.0", _period, r"its period is 30.0 s, the running twin's 60 s"),
    "older": ("0.9.0", None, r"older than the running model: twin 0.9.0 < running twin 1.0.0"),
    "runaway": ("1.1.0", _runaway, r"self-test failed: .*implausible roll-out: .*bearing_temp"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_twin_that_does_not_fit_or_runs_away_is_refused(
    case: str,
    tmp_path: Path,
    key_file: Path,
    server: ReleaseServer,
    publish_twin: TwinPublisher,
) -> None:
    version, edit, reason = REFUSALS[case]
    rig = rig_at(tmp_path, key_file, server)
    release = publish_twin(version, edit)
    _refused(rig, release, reason)


def _refused(rig: TwinRig, release: Any, reason: str, *, is_bad: bool = True) -> None:
    async def scenario() -> None:
        await rig.manager.update(release)
        await rig.manager.aclose()

    asyncio.run(scenario())
    report = rig.manager.report()
    assert report.state is ModelUpdateState.REJECTED
    assert report.reason is not None and re.search(reason, report.reason), report.reason
    assert version_in_service(rig) == "1.0.0"
    assert rig.alarms() == [REJECTED_ALARM]
    assert (release.version in report.bad_versions) is is_bad
    assert not (rig.twins.root / "current.json").exists()
    assert not any(p.name.startswith(".tmp-") for p in rig.twins.root.iterdir())
    rig.close()


def test_a_twin_signed_with_another_key_or_tampered_is_refused(
    tmp_path: Path, key_file: Path, server: ReleaseServer, make_bundle: Any
) -> None:
    rig = rig_at(tmp_path, key_file, server)
    # Signed, but not with the fleet's release key (here: a key of its own).
    folder = make_bundle(edit_manifest=versioned("1.1.0"), sign=False, source=DEFAULT_TWIN_BUNDLE)
    other = signing.generate_private_key()
    (folder / SIGNATURE_FILE).write_bytes(
        signing.sign(other, (folder / MANIFEST_FILE).read_bytes())
    )
    _refused(rig, server.add("other-key", tar_bundle(folder), "1.1.0"), r"signature")

    rig = rig_at(tmp_path / "b", key_file, server)
    folder = make_bundle(edit_manifest=versioned("1.2.0"), source=DEFAULT_TWIN_BUNDLE)
    data = tar_bundle(folder)
    # Same length, one byte of the manifest changed: the release's sha256 is recomputed,
    # so only the signature can catch it.
    at = data.index(b'"edgetwin-pump-twin"') + 1
    tampered = data[:at] + b"E" + data[at + 1 :]
    release = server.add("tampered", tampered, "1.2.0")
    _refused(rig, release, r"signature")


def test_a_forecaster_bundle_is_not_a_twin_release(
    tmp_path: Path, key_file: Path, server: ReleaseServer, publish_twin: TwinPublisher
) -> None:
    rig = rig_at(tmp_path, key_file, server)
    release = publish_twin("1.1.0", source=DEFAULT_BUNDLE)
    _refused(rig, release, r"not a twin bundle: .* is a per-channel forecaster bundle")


def test_a_truncated_twin_archive_is_refused_and_not_resumed_onto(
    tmp_path: Path, key_file: Path, server: ReleaseServer, publish_twin: TwinPublisher
) -> None:
    rig = rig_at(tmp_path, key_file, server)
    release = publish_twin("1.1.0", mode="truncate")
    _refused(rig, release, r"download failed|archive mismatch|truncated")
    assert not any((tmp_path / "device" / "twins" / ".partial").iterdir())


def test_the_shadow_applies_twin_version_and_reports_the_twin(
    tmp_path: Path, key_file: Path, server: ReleaseServer, publish_twin: TwinPublisher
) -> None:
    rig = rig_at(tmp_path, key_file, server)
    good = publish_twin("1.1.0")
    older = publish_twin("0.9.0")
    store = open_store(tmp_path / "shadow.db")

    def describe() -> DeviceReport:
        return DeviceReport("0", ModelReport(name="m", version="1.0.0", sha256="0" * 64), "h")

    shadow = Twin(store, make_engine(), "1.0.0", describe, twins=rig.manager)

    async def scenario() -> None:
        shadow.apply(DesiredState(version=1, twin_version="0.9.0", twin=older))
        await rig.manager.update(older)
        reported = shadow.reported()
        assert [r.key for r in reported.refused] == ["twin_version"]
        assert reported.refused[0].reason.startswith("rejected: older than the running model")
        shadow.apply(DesiredState(version=2, twin_version="1.1.0", twin=good))
        await rig.manager.update(good)
        assert shadow.reported().twin_update.state is ModelUpdateState.GUARDING  # type: ignore[union-attr]
        await settle(rig)
        await rig.manager.aclose()

    asyncio.run(scenario())
    reported = shadow.reported()
    assert reported.applied == ["twin_version"] and reported.refused == []
    assert reported.twin is not None and reported.twin.version == "1.1.0"
    assert reported.twin_update is not None
    assert reported.twin_update.state is ModelUpdateState.INSTALLED
    assert "0.9.0" in reported.twin_update.bad_versions
    # A device without a twin refuses any twin_version, naming why.
    plain = Twin(store, make_engine(), "1.0.0", describe)
    plain.apply(DesiredState(version=3, twin_version="1.1.0", twin=good))
    assert [(r.key, r.reason) for r in plain.reported().refused] == [
        ("twin_version", NO_TWIN_REFUSAL)
    ]
    assert plain.reported().twin is None
    store.close()
    rig.close()


def test_the_manifest_edit_keeps_json_the_device_reads(publish_twin: TwinPublisher) -> None:
    """The refusal cases edit the real shipped manifest: it still parses as a twin."""
    from edgetwin_contracts.manifest import Manifest

    data = json.loads((DEFAULT_TWIN_BUNDLE / MANIFEST_FILE).read_bytes())
    _channels_renamed(data)
    _runaway(data)
    assert Manifest.model_validate(data).twin is not None


def test_with_ota_disabled_a_twin_release_is_refused_and_never_fetched(
    tmp_path: Path, key_file: Path, server: ReleaseServer, publish_twin: TwinPublisher
) -> None:
    rig = build_rig(tmp_path / "device", key_file, server.url, ota=OtaConfig(enabled=False))
    assert rig.manager.request(publish_twin("1.1.0")) == DISABLED_REFUSAL
    assert server.requests == []
    assert version_in_service(rig) == "1.0.0"
    rig.close()

"""Twin releases on both databases, with a real twin bundle (model_export.twin_export):
published as a twin, offered as desired.twin (never desired.model), judged on the
device's reported twin_update, halted and restored on a rollback, never offered again to
a device that marked it bad, and independent of a model release in flight at once."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from cloud_sync.releases.errors import BundleRefused, ReleaseNotFound, VersionMarkedBad
from cloud_sync.releases.groups import add_to_group
from cloud_sync.releases.model import AssignmentStatus, ReleaseKind, ReleaseState
from cloud_sync.releases.offers import rollback
from cloud_sync.releases.publish import publish_release
from cloud_sync.releases.records import get_release, list_releases
from cloud_sync.releases.rollout import evaluate_rollouts, stop_release
from cloud_sync.releases.store import BundleStore
from cloud_sync.twin import get_desired
from edgetwin_contracts.batch import ModelRelease
from edgetwin_contracts.manifest import MODEL_FILE, SIGNATURE_FILE
from tests.cloud_sync.releases.conftest import TWIN_NAME, report

Bundles = Callable[[str], Path]


def _twin(
    engine: Engine,
    store: BundleStore,
    bundle: Path,
    key: Ed25519PrivateKey,
    version: str,
    **target: str,
) -> int:
    info = publish_release(engine, store, bundle, version=version, private_key=key, **target)
    assert info.kind == ReleaseKind.TWIN and info.model_name == TWIN_NAME
    return info.id


def _running(version: str) -> dict[str, str]:
    return {"name": TWIN_NAME, "version": version, "sha256": "cd" * 32}


def test_a_twin_bundle_is_offered_as_the_desired_twin_never_the_model(
    rel_engine: Engine,
    store: BundleStore,
    fleet: list[str],
    twin_bundle: Path,
    release_key: Ed25519PrivateKey,
) -> None:
    before = get_desired(rel_engine, "dev-3")
    release_id = _twin(rel_engine, store, twin_bundle, release_key, "1.1.0", device="dev-3")
    info = get_release(rel_engine, release_id)
    desired = get_desired(rel_engine, "dev-3")
    assert desired.version == before.version + 1
    assert desired.twin_version == "1.1.0"
    assert desired.twin == ModelRelease(
        version="1.1.0",
        sha256=info.sha256,
        size_bytes=info.size_bytes,
        url=f"/v1/releases/{info.sha256}/bundle",
        is_rollback=False,
    )
    assert desired.model is None and desired.model_version is None
    assert store.get(info.sha256).manifest.twin is not None  # stored as it came, a twin

    # A device reporting the model 1.1.0 installed says nothing about the twin 1.1.0.
    installed = {"state": "installed", "version": "1.1.0"}
    report(rel_engine, "dev-3", model_version="1.1.0", update=installed)
    assert evaluate_rollouts(rel_engine).installed == []
    report(rel_engine, "dev-3", twin_update={"state": "guarding", "version": "1.1.0"})
    assert evaluate_rollouts(rel_engine).installed == []
    report(rel_engine, "dev-3", twin_update={"state": "installed", "version": "1.1.0"})
    result = evaluate_rollouts(rel_engine)
    assert result.installed == [(release_id, "dev-3")] and result.completed == [release_id]


def test_twin_canary_advances_on_the_reported_twin_update(
    rel_engine: Engine,
    store: BundleStore,
    fleet: list[str],
    twin_bundle: Path,
    release_key: Ed25519PrivateKey,
) -> None:
    add_to_group(rel_engine, "canary", ["dev-0", "dev-1"])
    release_id = _twin(rel_engine, store, twin_bundle, release_key, "1.1.0", canary_group="canary")
    info = get_release(rel_engine, release_id)
    assert info.state == ReleaseState.CANARY
    assert {a.device for a in info.assignments} == {"dev-0", "dev-1"}
    assert get_desired(rel_engine, "dev-5").twin is None

    report(rel_engine, "dev-0", twin_update={"state": "installed", "version": "1.1.0"})
    report(rel_engine, "dev-1", twin_update={"state": "self_testing", "version": "1.1.0"})
    assert evaluate_rollouts(rel_engine).widened == []
    report(rel_engine, "dev-1", twin=_running("1.1.0"))  # in service: installed too
    result = evaluate_rollouts(rel_engine)
    assert result.widened == [(release_id, 1)]
    assert sorted(d for _, d in result.offered) == [f"dev-{i}" for i in range(2, 10)]
    assert all(get_desired(rel_engine, d).twin_version == "1.1.0" for d in fleet)
    assert all(get_desired(rel_engine, d).model_version is None for d in fleet)

    for device in fleet[2:]:
        report(rel_engine, device, twin_update={"state": "installed", "version": "1.1.0"})
    assert evaluate_rollouts(rel_engine).completed == [release_id]


def test_a_rolled_back_twin_halts_the_release_restores_the_previous_twin_and_is_never_offered_again(
    rel_engine: Engine,
    store: BundleStore,
    fleet: list[str],
    twin_bundle: Path,
    release_key: Ed25519PrivateKey,
    bundle_for: Bundles,
) -> None:
    old = _twin(rel_engine, store, twin_bundle, release_key, "1.0.0")
    for device in fleet:
        report(rel_engine, device, twin=_running("1.0.0"))
    assert evaluate_rollouts(rel_engine).completed == [old]
    previous = get_desired(rel_engine, "dev-0").twin
    assert previous is not None and previous.version == "1.0.0"

    add_to_group(rel_engine, "canary", ["dev-0", "dev-1"])
    new = _twin(rel_engine, store, twin_bundle, release_key, "1.1.0", canary_group="canary")
    assert get_desired(rel_engine, "dev-1").twin_version == "1.1.0"
    report(
        rel_engine,
        "dev-0",
        twin=_running("1.0.0"),
        twin_update={
            "state": "rolled_back",
            "version": "1.1.0",
            "reason": "live guard: MAE 0.9 > 0.3 of the previous twin",
            "bad_versions": {"1.1.0": "live guard: MAE 0.9 > 0.3 of the previous twin"},
        },
    )
    result = evaluate_rollouts(rel_engine)
    assert result.marked_bad == [(new, "dev-0", "live guard: MAE 0.9 > 0.3 of the previous twin")]
    assert [r for r, _ in result.stopped] == [new]
    info = get_release(rel_engine, new)
    assert info.state == ReleaseState.STOPPED and "dev-0 rolled_back" in (info.reason or "")
    by_device = {a.device: a.status for a in info.assignments}
    assert by_device == {"dev-0": AssignmentStatus.ROLLED_BACK, "dev-1": AssignmentStatus.WITHDRAWN}
    for device in ("dev-0", "dev-1"):  # both back on the twin they had, the model untouched
        desired = get_desired(rel_engine, device)
        assert desired.twin_version == "1.0.0"
        assert desired.twin == previous.model_copy(update={"is_rollback": True})
        assert desired.model is None
    assert get_desired(rel_engine, "dev-5").twin_version == "1.0.0"  # never widened

    with pytest.raises(VersionMarkedBad, match="dev-0"):
        rollback(rel_engine, "dev-0", "1.1.0", kind=ReleaseKind.TWIN)
    back = rollback(rel_engine, "dev-1", "1.1.0", kind=ReleaseKind.TWIN)
    assert back.kind == ReleaseKind.TWIN
    assert get_desired(rel_engine, "dev-1").twin == ModelRelease(
        version="1.1.0",
        sha256=info.sha256,
        size_bytes=info.size_bytes,
        url=f"/v1/releases/{info.sha256}/bundle",
        is_rollback=True,
    )

    # A device that reports a twin version bad is never offered it; a model release of
    # the same version still is (bad twin versions say nothing about models).
    report(
        rel_engine,
        "dev-5",
        twin_update={"state": "rejected", "version": "1.2.0", "bad_versions": {"1.2.0": "shapes"}},
    )
    twin_12 = _twin(rel_engine, store, twin_bundle, release_key, "1.2.0", device="dev-5")
    assigned = get_release(rel_engine, twin_12).assignments
    assert [(a.device, a.status, a.reason) for a in assigned] == [
        ("dev-5", AssignmentStatus.REJECTED, "shapes")
    ]
    assert get_desired(rel_engine, "dev-5").twin_version == "1.0.0"
    model_12 = publish_release(
        rel_engine, store, bundle_for("1.2.0"), version="1.2.0", device="dev-5"
    )
    assert model_12.kind == ReleaseKind.MODEL
    assert [a.status for a in model_12.assignments] == [AssignmentStatus.OFFERED]
    assert get_desired(rel_engine, "dev-5").model_version == "1.2.0"


def test_a_model_release_and_a_twin_release_in_flight_at_once(
    rel_engine: Engine,
    store: BundleStore,
    fleet: list[str],
    twin_bundle: Path,
    release_key: Ed25519PrivateKey,
    bundle_for: Bundles,
) -> None:
    add_to_group(rel_engine, "canary", ["dev-0"])
    model = publish_release(
        rel_engine, store, bundle_for("1.1.0"), version="1.1.0", canary_group="canary"
    )
    twin = _twin(rel_engine, store, twin_bundle, release_key, "1.1.0", device="dev-0")
    desired = get_desired(rel_engine, "dev-0")
    assert (desired.model_version, desired.twin_version) == ("1.1.0", "1.1.0")
    assert desired.model is not None and desired.twin is not None
    assert desired.model.sha256 == model.sha256 and desired.twin.sha256 != model.sha256
    # The twin's offer did not supersede the model's.
    statuses = {a.device: a.status for a in get_release(rel_engine, model.id).assignments}
    assert statuses == {"dev-0": AssignmentStatus.OFFERED}

    # The twin installs while the model is still in its live guard.
    report(
        rel_engine,
        "dev-0",
        update={"state": "guarding", "version": "1.1.0"},
        twin_update={"state": "installed", "version": "1.1.0"},
    )
    result = evaluate_rollouts(rel_engine)
    assert result.installed == [(twin, "dev-0")] and result.completed == [twin]
    assert get_release(rel_engine, model.id).state == ReleaseState.CANARY

    # The model's canary stopped: the desired model goes back, the twin stays.
    stop_release(rel_engine, model.id)
    desired = get_desired(rel_engine, "dev-0")
    assert desired.model_version is None and desired.model is None
    assert desired.twin_version == "1.1.0"

    # One version, two kinds: a rollback names which.
    with pytest.raises(ReleaseNotFound, match="name the model"):
        rollback(rel_engine, "dev-1", "1.1.0")
    assert rollback(rel_engine, "dev-1", "1.1.0", model_name=TWIN_NAME).kind == ReleaseKind.TWIN
    assert rollback(rel_engine, "dev-2", "1.1.0", kind=ReleaseKind.MODEL).kind == ReleaseKind.MODEL
    assert get_desired(rel_engine, "dev-1").twin_version == "1.1.0"
    assert get_desired(rel_engine, "dev-1").model_version is None
    assert get_desired(rel_engine, "dev-2").model_version == "1.1.0"
    assert get_desired(rel_engine, "dev-2").twin_version is None
    kinds = {(r.kind, r.version) for r in list_releases(rel_engine)}
    assert kinds == {(ReleaseKind.MODEL, "1.1.0"), (ReleaseKind.TWIN, "1.1.0")}


def test_an_unsigned_or_tampered_twin_bundle_is_refused(
    rel_engine: Engine,
    store: BundleStore,
    fleet: list[str],
    twin_bundle: Path,
    release_key: Ed25519PrivateKey,
    tmp_path: Path,
) -> None:
    unsigned = tmp_path / "unsigned"
    shutil.copytree(twin_bundle, unsigned)
    (unsigned / SIGNATURE_FILE).unlink()
    with pytest.raises(BundleRefused, match=r"manifest\.sig"):
        publish_release(rel_engine, store, unsigned, version="0.1.0", device="dev-0")

    # Signed, but by a key other than the fleet's (the throwaway key of the build).
    with pytest.raises(BundleRefused, match="refused"):
        publish_release(rel_engine, store, twin_bundle, version="0.1.0", device="dev-0")

    tampered = tmp_path / "tampered"
    shutil.copytree(twin_bundle, tampered)
    model = bytearray((tampered / MODEL_FILE).read_bytes())
    model[len(model) // 2] ^= 0xFF
    (tampered / MODEL_FILE).write_bytes(bytes(model))
    # Re-signing signs the manifest, whose model hash the tampered file no longer has.
    with pytest.raises(BundleRefused, match="sha256"):
        publish_release(
            rel_engine, store, tampered, version="1.1.0", device="dev-0", private_key=release_key
        )
    assert list_releases(rel_engine) == []
    assert get_desired(rel_engine, "dev-0").twin is None


def test_a_device_that_reports_no_twin_is_skipped_and_the_rollout_goes_on(
    rel_engine: Engine,
    store: BundleStore,
    fleet: list[str],
    twin_bundle: Path,
    release_key: Ed25519PrivateKey,
) -> None:
    report(rel_engine, "dev-4")  # no [twin] section: neither a twin nor a twin update
    release_id = _twin(rel_engine, store, twin_bundle, release_key, "1.1.0")
    info = get_release(rel_engine, release_id)
    skipped = [
        (a.device, a.reason) for a in info.assignments if a.status == AssignmentStatus.SKIPPED
    ]
    assert skipped == [
        ("dev-4", "no twin: the device reports neither a twin in service nor a twin update")
    ]
    assert get_desired(rel_engine, "dev-4").twin is None
    for device in fleet:
        if device != "dev-4":
            report(rel_engine, device, twin_update={"state": "installed", "version": "1.1.0"})
    assert evaluate_rollouts(rel_engine).completed == [release_id]

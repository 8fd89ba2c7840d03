"""Releases and staged rollouts on both databases: publish, widen, stop, mark bad."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from cloud_sync.registry import add_device
from cloud_sync.releases.errors import ReleaseExists, ReleaseInvalid, VersionMarkedBad
from cloud_sync.releases.groups import add_to_group, list_groups
from cloud_sync.releases.model import AssignmentStatus, ReleaseState
from cloud_sync.releases.offers import rollback
from cloud_sync.releases.publish import publish_release
from cloud_sync.releases.records import get_release
from cloud_sync.releases.rollout import evaluate_rollouts, stop_release
from cloud_sync.releases.stages import in_percent
from cloud_sync.releases.store import BundleStore
from cloud_sync.twin import get_desired
from edge_agent.model.shipped import DEFAULT_BUNDLE
from edgetwin_contracts.batch import ModelRelease
from tests.cloud_sync.releases.conftest import report

Bundles = Callable[[str], Path]


def test_publish_to_one_device_sets_its_desired_model(
    rel_engine: Engine, store: BundleStore, fleet: list[str], bundle_for: Bundles
) -> None:
    before = get_desired(rel_engine, "dev-3")
    info = publish_release(rel_engine, store, bundle_for("1.1.0"), version="1.1.0", device="dev-3")
    desired = get_desired(rel_engine, "dev-3")
    assert desired.version == before.version + 1
    assert desired.model_version == "1.1.0"
    assert desired.model == ModelRelease(
        version="1.1.0",
        sha256=info.sha256,
        size_bytes=info.size_bytes,
        url=f"/v1/releases/{info.sha256}/bundle",
        is_rollback=False,
    )
    assert store.path_of(info.sha256).stat().st_size == info.size_bytes
    assert info.target == {"device": "dev-3"} and info.state == ReleaseState.WIDENING
    assert [(a.device, a.status) for a in info.assignments] == [("dev-3", AssignmentStatus.OFFERED)]
    assert get_desired(rel_engine, "dev-4").model is None  # nobody else

    report(
        rel_engine,
        "dev-3",
        model_version="1.1.0",
        update={"state": "installed", "version": "1.1.0"},
    )
    result = evaluate_rollouts(rel_engine)
    assert result.installed == [(info.id, "dev-3")] and result.completed == [info.id]
    assert get_release(rel_engine, info.id).state == ReleaseState.COMPLETE

    with pytest.raises(ReleaseExists):
        publish_release(rel_engine, store, bundle_for("1.1.0"), version="1.1.0", device="dev-3")


def test_publish_refuses_a_version_other_than_the_manifest(
    rel_engine: Engine,
    store: BundleStore,
    fleet: list[str],
    bundle_for: Bundles,
    release_key: Ed25519PrivateKey,
) -> None:
    with pytest.raises(ReleaseInvalid, match=r"model\.version"):
        publish_release(rel_engine, store, bundle_for("1.1.0"), version="1.2.0", device="dev-1")
    # Re-signing (training's bundles) sets the version; the shipped bundle's key is not ours.
    info = publish_release(
        rel_engine, store, DEFAULT_BUNDLE, version="1.2.0", device="dev-1", private_key=release_key
    )
    assert info.version == "1.2.0"
    with pytest.raises(ReleaseInvalid, match="no devices"):
        publish_release(
            rel_engine, store, bundle_for("1.3.0"), version="1.3.0", canary_group="nobody"
        )


def test_canary_group_installs_then_release_widens_to_the_fleet(
    rel_engine: Engine, store: BundleStore, fleet: list[str], bundle_for: Bundles
) -> None:
    add_to_group(rel_engine, "canary", ["dev-0", "dev-1"])
    assert list_groups(rel_engine) == {"canary": ["dev-0", "dev-1"]}
    info = publish_release(
        rel_engine, store, bundle_for("1.1.0"), version="1.1.0", canary_group="canary"
    )
    assert info.state == ReleaseState.CANARY and info.stages == [
        {"group": "canary"},
        {"percent": 100},
    ]
    assert {a.device for a in info.assignments} == {"dev-0", "dev-1"}
    assert get_desired(rel_engine, "dev-5").model_version is None

    # One canary still guarding: no widening yet.
    report(
        rel_engine,
        "dev-0",
        model_version="1.1.0",
        update={"state": "installed", "version": "1.1.0"},
    )
    report(
        rel_engine, "dev-1", model_version="1.1.0", update={"state": "guarding", "version": "1.1.0"}
    )
    assert evaluate_rollouts(rel_engine).widened == []
    assert get_desired(rel_engine, "dev-5").model_version is None

    report(
        rel_engine,
        "dev-1",
        model_version="1.1.0",
        update={"state": "installed", "version": "1.1.0"},
    )
    result = evaluate_rollouts(rel_engine)
    assert result.widened == [(info.id, 1)]
    assert sorted(d for _, d in result.offered) == [f"dev-{i}" for i in range(2, 10)]
    assert all(get_desired(rel_engine, d).model_version == "1.1.0" for d in fleet)
    assert get_release(rel_engine, info.id).state == ReleaseState.WIDENING

    for device in fleet[2:]:
        report(rel_engine, device, model_version="1.1.0")
    assert evaluate_rollouts(rel_engine).completed == [info.id]


def test_canary_rollback_stops_the_release_and_the_bad_version_is_never_offered_again(
    rel_engine: Engine, store: BundleStore, fleet: list[str], bundle_for: Bundles
) -> None:
    old = publish_release(rel_engine, store, bundle_for("1.1.0"), version="1.1.0")
    for device in fleet:
        report(rel_engine, device, model_version="1.1.0")
    evaluate_rollouts(rel_engine)
    previous = get_desired(rel_engine, "dev-0")
    assert previous.model_version == "1.1.0"

    add_to_group(rel_engine, "canary", ["dev-0", "dev-1"])
    new = publish_release(
        rel_engine, store, bundle_for("1.2.0"), version="1.2.0", canary_group="canary"
    )
    assert get_desired(rel_engine, "dev-0").model_version == "1.2.0"
    report(
        rel_engine,
        "dev-0",
        model_version="1.1.0",
        update={
            "state": "rolled_back",
            "version": "1.2.0",
            "reason": "live guard: MAE 2.1x the previous model",
            "bad_versions": {"1.2.0": "live guard: MAE 2.1x the previous model"},
        },
    )
    result = evaluate_rollouts(rel_engine)
    assert result.stopped and "dev-0" in result.stopped[0][1]
    info = get_release(rel_engine, new.id)
    assert info.state == ReleaseState.STOPPED and "MAE 2.1x" in (info.reason or "")
    statuses = {a.device: (a.status, a.reason) for a in info.assignments}
    assert statuses["dev-0"] == (
        AssignmentStatus.ROLLED_BACK,
        "live guard: MAE 2.1x the previous model",
    )
    assert statuses["dev-1"][0] == AssignmentStatus.WITHDRAWN
    # Both canaries are back on their previous desired model, the rest never saw 1.2.0.
    for device in ("dev-0", "dev-1"):
        desired = get_desired(rel_engine, device)
        assert desired.model_version == "1.1.0" and previous.model is not None
        # Given back as a rollback: a canary that installed 1.2.0 unreported goes back too.
        assert desired.model == previous.model.model_copy(update={"is_rollback": True})
    assert all(get_desired(rel_engine, d).model_version == "1.1.0" for d in fleet)
    # Stopped: evaluating again offers nothing, and the device refuses it for good.
    assert evaluate_rollouts(rel_engine).offered == []
    with pytest.raises(VersionMarkedBad):
        rollback(rel_engine, "dev-0", "1.2.0")
    assert old.id != new.id


def test_a_bad_device_in_the_last_stage_is_reverted_without_stopping(
    rel_engine: Engine, store: BundleStore, fleet: list[str], bundle_for: Bundles
) -> None:
    info = publish_release(rel_engine, store, bundle_for("1.1.0"), version="1.1.0")
    assert len(info.assignments) == len(fleet)
    report(
        rel_engine,
        "dev-4",
        update={
            "state": "rejected",
            "version": "1.1.0",
            "reason": "golden vector 2 off by 9 LSB",
            "bad_versions": {"1.1.0": "golden vector 2 off"},
        },
    )
    result = evaluate_rollouts(rel_engine)
    assert result.stopped == [] and result.marked_bad == [(info.id, "dev-4", "golden vector 2 off")]
    assert get_desired(rel_engine, "dev-4").model is None
    assert get_release(rel_engine, info.id).state == ReleaseState.WIDENING


def test_rollback_asks_for_an_older_release(
    rel_engine: Engine, store: BundleStore, fleet: list[str], bundle_for: Bundles
) -> None:
    publish_release(rel_engine, store, bundle_for("1.1.0"), version="1.1.0", device="dev-2")
    publish_release(rel_engine, store, bundle_for("1.2.0"), version="1.2.0", device="dev-2")
    rollback(rel_engine, "dev-2", "1.1.0")
    desired = get_desired(rel_engine, "dev-2")
    assert desired.model is not None and desired.model.is_rollback
    assert desired.model.version == desired.model_version == "1.1.0"


def test_stop_withdraws_pending_offers(
    rel_engine: Engine, store: BundleStore, fleet: list[str], bundle_for: Bundles
) -> None:
    info = publish_release(rel_engine, store, bundle_for("1.1.0"), version="1.1.0")
    stopped = stop_release(rel_engine, info.id, "wrong channel set")
    assert stopped.state == ReleaseState.STOPPED and stopped.reason == "wrong channel set"
    assert {a.status for a in stopped.assignments} == {AssignmentStatus.WITHDRAWN}
    assert all(get_desired(rel_engine, d).model is None for d in fleet)


def test_percentage_selection_is_stable_and_widens(
    rel_engine: Engine, store: BundleStore, fleet: list[str], bundle_for: Bundles
) -> None:
    names = [f"device-{i}" for i in range(1000)]
    at_10 = {n for n in names if in_percent(7, n, 10)}
    at_50 = {n for n in names if in_percent(7, n, 50)}
    assert at_10 == {n for n in names if in_percent(7, n, 10)}  # stable
    assert at_10 <= at_50 and 50 < len(at_10) < 150 and 400 < len(at_50) < 600
    assert at_10 != {n for n in names if in_percent(8, n, 10)}  # per release

    info = publish_release(
        rel_engine, store, bundle_for("1.1.0"), version="1.1.0", canary_percent=30
    )
    canaries = {a.device for a in info.assignments}
    expected = {d for d in fleet if in_percent(info.id, d, 30)}
    assert canaries == (expected or canaries) and 1 <= len(canaries) < len(fleet)
    for device in canaries:
        report(rel_engine, device, model_version="1.1.0")
    evaluate_rollouts(rel_engine)
    assert {a.device for a in get_release(rel_engine, info.id).assignments} == set(fleet)


def test_new_devices_join_an_open_fleet_release(
    rel_engine: Engine, store: BundleStore, fleet: list[str], bundle_for: Bundles
) -> None:
    info = publish_release(rel_engine, store, bundle_for("1.1.0"), version="1.1.0")
    add_device(rel_engine, "late-1")
    evaluate_rollouts(rel_engine)
    assert get_desired(rel_engine, "late-1").model_version == "1.1.0"
    assert "late-1" in {a.device for a in get_release(rel_engine, info.id).assignments}

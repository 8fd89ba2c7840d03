"""The twin module is the one writer of a device's desired state: releases offered,
refused, stopped and rolled back all go through it, with its version check."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from cloud_sync.errors import VersionConflict
from cloud_sync.releases.groups import add_to_group
from cloud_sync.releases.offers import rollback
from cloud_sync.releases.publish import publish_release
from cloud_sync.releases.rollout import evaluate_rollouts, stop_release
from cloud_sync.releases.store import BundleStore
from cloud_sync.twin import DesiredPatch, get_desired, patch_desired, set_desired_model
from edgetwin_contracts.batch import DesiredState
from tests.cloud_sync.releases.conftest import report

PACKAGE = Path(__file__).resolve().parents[3] / "cloud_sync"


def _writer() -> str:
    """The innermost module of cloud_sync on the stack."""
    for frame in reversed(traceback.extract_stack()):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(PACKAGE):
            return path.relative_to(PACKAGE.parent).as_posix()
    return "?"


def test_only_the_twin_module_writes_desired(
    rel_engine: Engine,
    store: BundleStore,
    fleet: list[str],
    bundle_for: Callable[[str], Path],
) -> None:
    writers: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        head = statement.split("WHERE")[0].lower()
        if head.lstrip().startswith("update devices") and "desired" in head:
            writers.append(_writer())

    event.listen(rel_engine, "before_cursor_execute", spy)
    try:
        publish_release(rel_engine, store, bundle_for("1.1.0"), version="1.1.0", device="dev-0")
        report(rel_engine, "dev-0", model_version="1.1.0")
        evaluate_rollouts(rel_engine)
        add_to_group(rel_engine, "canary", ["dev-0", "dev-1"])
        canary = publish_release(
            rel_engine, store, bundle_for("1.2.0"), version="1.2.0", canary_group="canary"
        )
        report(
            rel_engine,
            "dev-1",
            update={"state": "rejected", "version": "1.2.0", "bad_versions": {"1.2.0": "no"}},
        )
        evaluate_rollouts(rel_engine)  # dev-1 reverted, the release stops, dev-0 withdrawn
        stop_release(rel_engine, canary.id)
        rollback(rel_engine, "dev-2", "1.1.0")
        desired = get_desired(rel_engine, "dev-3")
        patch_desired(rel_engine, "dev-3", desired.version, DesiredPatch(sync_interval_s=30))
    finally:
        event.remove(rel_engine, "before_cursor_execute", spy)
    # dev-0 offered 1.1.0; dev-0, dev-1 offered 1.2.0; both reverted; dev-2; dev-3.
    assert len(writers) == 7, writers
    assert set(writers) == {"cloud_sync/twin.py"}
    assert get_desired(rel_engine, "dev-0").model_version == "1.1.0"


def test_a_release_offer_on_a_stale_read_is_refused(rel_engine: Engine, fleet: list[str]) -> None:
    current = get_desired(rel_engine, "dev-0")
    patch_desired(rel_engine, "dev-0", current.version, DesiredPatch(sync_interval_s=30))
    with rel_engine.begin() as conn, pytest.raises(VersionConflict):
        device_id = conn.exec_driver_sql("SELECT id FROM devices WHERE name = 'dev-0'").scalar_one()
        set_desired_model(conn, device_id, current, "9.9.9", None)
    after = get_desired(rel_engine, "dev-0")
    assert after.version == current.version + 1 and after.model_version is None
    assert after == DesiredState(version=after.version, sync_interval_s=30)

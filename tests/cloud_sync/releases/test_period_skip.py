"""The rollout skips a device whose channels cannot feed the release's model period
(what it reports as each channel's feed_period_s), with the reason, and goes on."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from cloud_sync.releases.model import AssignmentStatus, ReleaseState
from cloud_sync.releases.publish import publish_release
from cloud_sync.releases.records import get_release
from cloud_sync.releases.rollout import evaluate_rollouts
from cloud_sync.releases.store import BundleStore
from cloud_sync.twin import get_desired
from edgetwin_contracts.batch import ReportedState
from tests.cloud_sync.conftest import reported
from tests.cloud_sync.releases.conftest import report, update_device


def report_feeds(engine: Engine, device: str, feeds: dict[str, float | None]) -> None:
    body = reported(
        int(time.monotonic_ns()),
        model={"name": "edgetwin-generic-forecaster", "version": "1.0.0", "sha256": "ab" * 32},
        channels={name: {"health": [], "feed_period_s": f} for name, f in feeds.items()},
    )
    state = ReportedState.model_validate(body)
    with engine.begin() as conn:
        conn.execute(
            update_device(device).values(
                reported=state.model_dump(mode="json"), reported_version=state.version
            )
        )


def test_rollout_skips_a_device_that_cannot_feed_the_period(
    rel_engine: Engine,
    store: BundleStore,
    fleet: list[str],
    make_bundle: Callable[..., Path],
) -> None:
    def edit(m: dict[str, Any]) -> None:
        m["model"]["version"] = "1.1.0"
        m["input"]["sample_period_s"] = 60.0

    for name in fleet:
        report_feeds(rel_engine, name, {"temp": 0.1, "vib": 0.1})
    report_feeds(rel_engine, "dev-2", {"temp": 0.1, "flow": 300.0})
    info = publish_release(rel_engine, store, make_bundle(edit_manifest=edit), version="1.1.0")
    statuses = {a.device: (a.status, a.reason) for a in info.assignments}
    status, reason = statuses["dev-2"]
    assert status is AssignmentStatus.SKIPPED
    assert reason is not None and "60 s" in reason and "flow every 300 s" in reason
    assert get_desired(rel_engine, "dev-2").model is None  # never offered
    assert {s for d, (s, _) in statuses.items() if d != "dev-2"} == {AssignmentStatus.OFFERED}

    for name in fleet:
        if name != "dev-2":
            report(
                rel_engine,
                name,
                model_version="1.1.0",
                update={"state": "installed", "version": "1.1.0"},
            )
    result = evaluate_rollouts(rel_engine)
    assert result.stopped == [] and result.completed == [info.id]
    assert get_release(rel_engine, info.id).state == ReleaseState.COMPLETE


def test_a_scale_free_release_is_offered_whatever_the_feeds(
    rel_engine: Engine, store: BundleStore, fleet: list[str], bundle_for: Callable[[str], Path]
) -> None:
    report_feeds(rel_engine, "dev-2", {"flow": 300.0})
    info = publish_release(rel_engine, store, bundle_for("1.1.0"), version="1.1.0", device="dev-2")
    assert [(a.device, a.status) for a in info.assignments] == [("dev-2", AssignmentStatus.OFFERED)]
    assert info.state == ReleaseState.WIDENING

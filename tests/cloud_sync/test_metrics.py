"""``GET /metrics`` (issue 15, item 13) through a real uvicorn, on SQLite and PostgreSQL:
ingest outcomes, rejects by reason, devices by health, rollout states; admin only."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, update

from cloud_sync.db.models import Device
from cloud_sync.releases.publish import publish_release
from cloud_sync.releases.rollout import stop_release
from cloud_sync.releases.store import BundleStore
from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key
from tests.cloud_sync.conftest import ADMIN, alarm_event, batch, bearer, post_batch, reported

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(http: httpx.Client) -> Samples:
    response = http.get("/metrics", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_count_ingest_rejects_devices_and_rollouts(
    api: httpx.Client, engine: Engine, tokens: dict[str, str], tmp_path: Path
) -> None:
    token = tokens["pump-1"]
    first = batch(1, reported=reported(1))
    assert post_batch(api, token, first).status_code == 200
    assert post_batch(api, token, first).status_code == 200
    assert post_batch(api, token, {**batch(2), "sequence": "2"}).status_code == 422
    assert post_batch(api, token, b"{", compress=False).status_code == 400
    assert post_batch(api, token, batch(2 + 2**31)).status_code == 422
    assert post_batch(api, token, batch(3, alarms=[alarm_event(5)])).status_code == 200
    assert post_batch(api, "not-a-device-token", batch(4)).status_code == 401
    assert post_batch(api, tokens["pump-2"], batch(1, reported=reported(1))).status_code == 200
    with engine.begin() as conn:  # pump-2 went quiet an hour ago
        conn.execute(
            update(Device).where(Device.name == "pump-2").values(last_seen=time.time() - 3600)
        )
    store = BundleStore(tmp_path / "bundles", default_public_key())
    release = publish_release(engine, store, DEFAULT_BUNDLE, version="1.0.0", device="pump-1")
    stop_release(engine, release.id, "stopped by the test")

    samples = scrape(api)
    assert samples[("cloudsync_ingest_batches_total", (("outcome", "stored"),))] == 3
    assert samples[("cloudsync_ingest_batches_total", (("outcome", "duplicate"),))] == 1
    assert samples[("cloudsync_ingest_batches_total", (("outcome", "rejected"),))] == 4
    assert samples[("cloudsync_ingest_rejects_total", (("reason", "batch_invalid"),))] == 2
    assert samples[("cloudsync_ingest_rejects_total", (("reason", "body_malformed"),))] == 1
    assert samples[("cloudsync_ingest_rejects_total", (("reason", "token_rejected"),))] == 1
    assert samples[("cloudsync_devices", (("health", "ok"),))] == 1
    assert samples[("cloudsync_devices", (("health", "stale"),))] == 1
    assert samples[("cloudsync_releases", (("state", "stopped"),))] == 1
    assert samples[("cloudsync_releases", (("state", "complete"),))] == 0
    # alarm 1 of each device (in every test batch) and alarm 5 of pump-1
    assert samples[("cloudsync_open_alarms", (("severity", "warning"),))] == 3
    assert samples[("cloudsync_notifications_pending", ())] == 0


def test_metrics_need_the_admin_token(api: httpx.Client, tokens: dict[str, str]) -> None:
    assert api.get("/metrics").status_code == 401
    assert api.get("/metrics", headers=bearer(tokens["pump-1"])).status_code == 403

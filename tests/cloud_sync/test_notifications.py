"""Webhook notifications (issue 15, item 13) to a real uvicorn receiver, on SQLite and
PostgreSQL: a device silent past its stale time, a fleet alarm, a stopped rollout —
each told once when raised and once when it clears, retried with the same
Idempotency-Key until the receiver accepts it. Passes are run at chosen times (``now``),
so nothing here waits on the clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from cloud_sync.config import (
    AuthSection,
    CloudConfig,
    DatabaseSection,
    FleetSection,
    NotificationsSection,
    WebhookTarget,
)
from cloud_sync.http.app import create_app
from cloud_sync.notifications import NotificationPass
from cloud_sync.releases.publish import publish_release
from cloud_sync.releases.rollout import stop_release
from cloud_sync.releases.store import BundleStore
from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key
from edgetwin_common.retry import BackoffConfig
from edgetwin_common.testing import wait_until
from tests.cloud_sync.conftest import ADMIN_TOKEN, alarm_event, batch, live_server, post_batch
from tests.cloud_sync.test_alarm_reasons import event_with_reason
from tests.cloud_sync.webhooks import Receiver, webhook_receiver

STALE_S = 600.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as state:
        yield state


@pytest.fixture
def notify_config(db_url: str, receiver: Receiver) -> CloudConfig:
    return CloudConfig(
        database=DatabaseSection(url=db_url),
        auth=AuthSection(admin_token=SecretStr(ADMIN_TOKEN)),
        fleet=FleetSection(stale_after_s=STALE_S),
        notifications=NotificationsSection(
            webhooks=[WebhookTarget(url=receiver.url, headers={"X-Fleet": "test"})],
            backoff=BackoffConfig(initial_s=10.0, max_s=60.0),
        ),
    )


@pytest.fixture
def api(notify_config: CloudConfig, engine: Engine) -> Iterator[httpx.Client]:
    with live_server(create_app(notify_config, engine)) as url, httpx.Client(base_url=url) as http:
        yield http


def test_a_silent_device_is_told_once_and_again_when_it_reports(
    api: httpx.Client,
    engine: Engine,
    notify_config: CloudConfig,
    tokens: dict[str, str],
    receiver: Receiver,
) -> None:
    assert post_batch(api, tokens["pump-1"], batch(1, alarms=[])).status_code == 200
    notifier = NotificationPass(engine, notify_config)
    t0 = time.time()
    assert notifier.run(t0 + STALE_S / 2).changes == []
    for later in (t0 + STALE_S + 5, t0 + STALE_S + 60, t0 + 2 * STALE_S):
        notifier.run(later)
    assert receiver.events() == [("raised", "device_stale:pump-1")]
    assert len(receiver.calls) == 1
    raised = receiver.accepted()[0]
    assert raised["kind"] == "device_stale" and "pump-1" in raised["message"]
    # pump-2 never sent anything: unknown, not stale.
    assert all("pump-2" not in key for _, key in receiver.events())

    assert post_batch(api, tokens["pump-1"], batch(2, alarms=[])).status_code == 200
    notifier.run(time.time() + 1)
    notifier.run(time.time() + 2)
    assert receiver.events() == [
        ("raised", "device_stale:pump-1"),
        ("cleared", "device_stale:pump-1"),
    ]
    assert receiver.accepted()[1]["message"].startswith("cleared: ")


def test_a_fleet_alarm_is_told_when_raised_and_when_cleared(
    api: httpx.Client,
    engine: Engine,
    notify_config: CloudConfig,
    tokens: dict[str, str],
    receiver: Receiver,
) -> None:
    token = tokens["pump-1"]
    raised = event_with_reason(7)
    assert post_batch(api, token, batch(1, alarms=[raised])).status_code == 200
    notifier = NotificationPass(engine, notify_config)
    notifier.run(time.time())
    notifier.run(time.time())
    assert receiver.events() == [("raised", "fleet_alarm:pump-1:7")]
    detail = receiver.accepted()[0]["detail"]
    assert (detail["severity"], detail["rule"]) == ("warning", "pressure_high")
    assert detail["reason"] == raised["alarm"]["reason"]  # why, as the device said

    cleared = batch(2, alarms=[alarm_event(7, kind="cleared")])
    assert post_batch(api, token, cleared).status_code == 200
    notifier.run(time.time())
    assert receiver.events()[-1] == ("cleared", "fleet_alarm:pump-1:7")

    # The same alarm raised again later is a new episode, told again.
    again = batch(3, alarms=[alarm_event(7, ts=time.time() - 5)])
    assert post_batch(api, token, again).status_code == 200
    notifier.run(time.time() + 1)
    assert [e for e, _ in receiver.events()] == ["raised", "cleared", "raised"]


def test_a_stopped_rollout_is_told_once(
    engine: Engine,
    notify_config: CloudConfig,
    tokens: dict[str, str],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    store = BundleStore(tmp_path / "bundles", default_public_key())
    release = publish_release(engine, store, DEFAULT_BUNDLE, version="1.0.0", device="pump-1")
    notifier = NotificationPass(engine, notify_config)
    notifier.run()
    assert receiver.events() == []
    stop_release(engine, release.id, "canary pump-1 rolled it back")
    notifier.run()
    notifier.run()
    assert receiver.events() == [("raised", f"rollout_stopped:{release.id}")]
    assert "rolled it back" in receiver.accepted()[0]["message"]


def test_a_failing_receiver_gets_the_same_call_again_after_the_backoff(
    api: httpx.Client,
    engine: Engine,
    notify_config: CloudConfig,
    tokens: dict[str, str],
    receiver: Receiver,
) -> None:
    assert post_batch(api, tokens["pump-1"], batch(1, alarms=[alarm_event(3)])).status_code == 200
    receiver.fail_next = 2
    notifier = NotificationPass(engine, notify_config)
    now = time.time()
    assert notifier.run(now).failed == 1
    # Not due before its backoff (initial 10 s, equal jitter: at least 5 s).
    assert notifier.run(now + 1).failed == 0
    assert notifier.run(now + 11).failed == 1
    assert notifier.run(now + 12).delivered == 0
    assert notifier.run(now + 60).delivered == 1
    assert receiver.fail_next == 0
    assert receiver.events() == [("raised", "fleet_alarm:pump-1:3")]
    assert notifier.run(now + 300).delivered == 0


def test_two_replicas_tell_each_change_once(
    api: httpx.Client,
    engine: Engine,
    notify_config: CloudConfig,
    tokens: dict[str, str],
    receiver: Receiver,
) -> None:
    for i, name in enumerate(("pump-1", "pump-2")):
        body = batch(1, alarms=[alarm_event(i + 1)])
        assert post_batch(api, tokens[name], body).status_code == 200
    replicas = [NotificationPass(engine, notify_config) for _ in range(2)]
    now = time.time()
    threads = [threading.Thread(target=r.run, args=(now,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for replica in replicas:
        replica.run(now + 1)
    assert sorted(key for _, key in receiver.events()) == [
        "fleet_alarm:pump-1:1",
        "fleet_alarm:pump-2:2",
    ]
    assert len(receiver.calls) == 2


def test_serve_runs_notifications_only_with_webhooks(
    notify_config: CloudConfig, engine: Engine
) -> None:
    from cloud_sync.jobs import serve_jobs

    assert "notifications" in [job.name for job in serve_jobs(notify_config, engine, None)]
    quiet = notify_config.model_copy(update={"notifications": NotificationsSection()})
    assert "notifications" not in [job.name for job in serve_jobs(quiet, engine, None)]


def test_the_serve_job_tells_the_receiver(
    api: httpx.Client,
    engine: Engine,
    notify_config: CloudConfig,
    tokens: dict[str, str],
    receiver: Receiver,
) -> None:
    from cloud_sync.jobs import notifications

    section = notify_config.notifications.model_copy(update={"check_interval_s": 0.05})
    config = notify_config.model_copy(update={"notifications": section})
    assert post_batch(api, tokens["pump-2"], batch(1, alarms=[alarm_event(9)])).status_code == 200
    job = notifications(engine, config)
    job.start()
    try:
        wait_until(lambda: receiver.events(), "the notification job's first call")
    finally:
        job.stop()
    assert receiver.events() == [("raised", "fleet_alarm:pump-2:9")]
    assert job.failures == 0

"""Twins: PATCH desired with optimistic concurrency, and reconciliation after offline."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from tests.cloud_sync.conftest import ADMIN, batch, bearer, post_batch, reported

DESIRED = "/v1/devices/pump-1/desired"


def patch(api: httpx.Client, body: dict[str, object], if_match: str | None) -> httpx.Response:
    headers = dict(ADMIN)
    if if_match is not None:
        headers["If-Match"] = if_match
    return api.patch(DESIRED, json=body, headers=headers)


def test_desired_needs_if_match_and_refuses_stale_versions(
    api: httpx.Client, tokens: dict[str, str]
) -> None:
    assert patch(api, {"sync_interval_s": 30}, None).status_code == 428

    first = patch(api, {"sync_interval_s": 30}, '"0"')
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == '"1"'
    assert first.json() == {
        "version": 1,
        "model_version": None,
        "model": None,
        "twin_version": None,
        "twin": None,
        "alarm_overrides": {},
        "sync_interval_s": 30.0,
    }

    stale = patch(api, {"model_version": "2.0.0"}, '"0"')
    assert stale.status_code == 409
    assert "version 0" in stale.json()["detail"]

    # The version may come in the body instead of If-Match.
    second = patch(api, {"model_version": "2.0.0", "version": 1}, None)
    assert second.status_code == 200 and second.json()["version"] == 2
    assert patch(api, {"version": 1}, None).status_code == 409

    current = api.get(DESIRED, headers=ADMIN)
    assert current.headers["etag"] == '"2"'
    assert current.json()["sync_interval_s"] == 30.0
    assert current.json()["model_version"] == "2.0.0"


@pytest.mark.parametrize(
    ("if_match", "body", "status"),
    [
        pytest.param("abc", {}, 400, id="not-a-version"),
        pytest.param('"0", "1"', {}, 400, id="a-list"),
        pytest.param('"0"', {"version": 3}, 400, id="disagrees-with-body"),
        pytest.param('W/"0"', {}, 200, id="weak-tag"),
        pytest.param('"0"', {"sync_interval_s": 0.5}, 422, id="interval-too-short"),
        pytest.param('"0"', {"alarm_overrides": {"r": {"set": "high"}}}, 422, id="wrong-type"),
        pytest.param('"0"', {"colour": "blue"}, 422, id="unknown-key"),
    ],
)
def test_desired_bad_writes(
    api: httpx.Client,
    tokens: dict[str, str],
    if_match: str,
    body: dict[str, object],
    status: int,
) -> None:
    assert patch(api, body, if_match).status_code == status


def test_alarm_overrides_merge_per_rule(api: httpx.Client, tokens: dict[str, str]) -> None:
    one = patch(api, {"alarm_overrides": {"p_high": {"set": 9.0, "clear": 8.0}}}, '"0"')
    two = patch(api, {"alarm_overrides": {"t_high": {"severity": "critical"}}}, '"1"')
    assert two.json()["alarm_overrides"] == {
        "p_high": {
            "set": 9.0,
            "clear": 8.0,
            "on_delay_s": None,
            "off_delay_s": None,
            "severity": None,
        },
        "t_high": {
            "set": None,
            "clear": None,
            "on_delay_s": None,
            "off_delay_s": None,
            "severity": "critical",
        },
    }
    assert one.status_code == 200
    three = patch(api, {"alarm_overrides": {"p_high": None}}, '"2"')
    assert list(three.json()["alarm_overrides"]) == ["t_high"]
    assert three.json()["version"] == 3


def test_offline_changes_reach_the_device_and_reported_only_moves_forward(
    api: httpx.Client, engine: Engine, tokens: dict[str, str]
) -> None:
    token = tokens["pump-1"]
    online = post_batch(api, token, batch(1, reported=reported(1, desired_applied=0)))
    assert online.json()["desired"]["version"] == 0

    # The device goes offline; the operator changes desired twice meanwhile.
    assert patch(api, {"model_version": "1.1.0"}, '"0"').status_code == 200
    assert patch(api, {"sync_interval_s": 120}, '"1"').status_code == 200
    twin = api.get("/v1/twin", headers=bearer(token)).json()
    assert twin["desired_version"] == 2 and twin["is_desired_applied"] is False

    # Back online: the first ack carries the whole current desired state.
    back = post_batch(api, token, batch(2, reported=reported(1, desired_applied=0)))
    assert back.json()["desired"] == {
        "version": 2,
        "model_version": "1.1.0",
        "model": None,
        "twin_version": None,
        "twin": None,
        "alarm_overrides": {},
        "sync_interval_s": 120.0,
    }
    # A resend of an old batch also carries the current desired state.
    assert post_batch(api, token, batch(1, reported=reported(1))).json()["desired"]["version"] == 2

    # The device applies what it can and says so.
    refusal = [{"key": "model_version", "reason": "release 1.1.0 not downloadable yet"}]
    report = reported(2, desired_applied=2, applied=["sync_interval_s"], refused=refusal)
    assert post_batch(api, token, batch(3, reported=report)).status_code == 200
    twin = api.get("/v1/twin", headers=bearer(token)).json()
    assert twin["reported_version"] == 2 and twin["is_desired_applied"] is True
    assert twin["reported"]["refused"] == refusal

    # A report with an older version (a late batch) never rolls the twin back.
    assert (
        post_batch(api, token, batch(4, reported=reported(1, desired_applied=0))).status_code == 200
    )
    twin = api.get("/v1/twin", headers=bearer(token)).json()
    assert twin["reported_version"] == 2 and twin["reported"]["applied"] == ["sync_interval_s"]
    assert twin["last_sequence"] == 4


def test_twin_of_a_new_device(api: httpx.Client, tokens: dict[str, str]) -> None:
    twin = api.get("/v1/twin", headers=bearer(tokens["pump-2"]))
    assert twin.status_code == 200
    assert twin.json() == {
        "device": "pump-2",
        "reported": None,
        "reported_version": None,
        "desired": {
            "version": 0,
            "model_version": None,
            "model": None,
            "twin_version": None,
            "twin": None,
            "alarm_overrides": {},
            "sync_interval_s": None,
        },
        "desired_version": 0,
        "is_desired_applied": False,
        "last_seen": None,
        "last_sequence": 0,
        "last_summaries": {},
        "open_alarms": [],
        "counters": {"batches": 0, "duplicates": 0, "sequence_gaps": 0},
    }

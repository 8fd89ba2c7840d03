"""What an attack campaign sent the cloud (issue 15, items 3-5), each refused with a 4xx
naming the field and nothing stored: in process and through a real uvicorn, on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from edgetwin_contracts.batch import MAX_BATCH_BYTES, MAX_SEQUENCE, MAX_SEQUENCE_JUMP
from tests.cloud_sync.conftest import (
    ADMIN,
    batch,
    post_batch,
    reported,
    stored,
    summary,
)


def _problems(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json()
    assert isinstance(body["detail"], list), body
    problems: list[dict[str, Any]] = body["detail"]
    return problems


def _locs(response: httpx.Response) -> list[list[Any]]:
    return [p["loc"] for p in _problems(response)]


def test_a_sequence_jump_beyond_the_bound_is_refused_and_the_device_goes_on(
    api: httpx.Client, engine: Engine, tokens: dict[str, str]
) -> None:
    token = tokens["pump-1"]
    assert post_batch(api, token, batch(1)).status_code == 200
    for sequence in (2**63 - 1, MAX_SEQUENCE + 1, 1 + MAX_SEQUENCE_JUMP + 1):
        response = post_batch(api, token, batch(sequence))
        assert response.status_code == 422, (sequence, response.text)
        assert ["body", "sequence"] in _locs(response)
    assert stored(engine)["last_sequence"] == 1
    # The largest jump allowed goes through; the device's next batch follows it.
    assert post_batch(api, token, batch(1 + MAX_SEQUENCE_JUMP)).status_code == 200
    assert post_batch(api, token, batch(2 + MAX_SEQUENCE_JUMP)).status_code == 200
    assert stored(engine)["last_sequence"] == 2 + MAX_SEQUENCE_JUMP


def _bad_batches() -> list[Any]:
    now = time.time()
    good = batch(1)
    return [
        pytest.param({**good, "sequence": "7"}, ["body", "sequence"], id="sequence-as-string"),
        pytest.param({**good, "sequence": 7.0}, ["body", "sequence"], id="sequence-as-float"),
        pytest.param({**good, "sequence": True}, ["body", "sequence"], id="sequence-as-bool"),
        pytest.param({**good, "created_at": "1"}, ["body", "created_at"], id="time-as-string"),
        pytest.param({**good, "created_at": 0}, ["body", "created_at"], id="created-at-zero"),
        pytest.param(
            {**good, "summaries": [summary(start=now - 1e15)]},
            ["body", "summaries", 0, "start"],
            id="start-1e15-s-ago",
        ),
        pytest.param(
            {**good, "summaries": [summary(start=now - 600, end=now - 660)]},
            ["body", "summaries", 0],
            id="end-before-start",
        ),
        pytest.param(
            {**good, "summaries": [summary(min=5.0, max=1.0)]},
            ["body", "summaries", 0],
            id="min-above-max",
        ),
        pytest.param(
            {**good, "summaries": [summary(count="60")]},
            ["body", "summaries", 0, "count"],
            id="count-as-string",
        ),
        pytest.param(
            {**good, "reported": reported(1, counters={"dropped": "3"})},
            ["body", "reported", "counters", "dropped"],
            id="counter-as-string",
        ),
    ]


@pytest.mark.parametrize(("body", "loc"), _bad_batches())
def test_loose_types_and_out_of_range_values_are_refused_naming_the_field(
    api: httpx.Client,
    engine: Engine,
    tokens: dict[str, str],
    body: dict[str, Any],
    loc: list[Any],
) -> None:
    before = stored(engine)
    response = post_batch(api, tokens["pump-1"], body)
    assert response.status_code == 422, response.text
    assert loc in _locs(response), response.text
    assert stored(engine) == before


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_uncompressed_body_above_the_cap_is_refused(
    api: httpx.Client, engine: Engine, tokens: dict[str, str], chunked: bool
) -> None:
    body = batch(1, summaries=[summary(channel=f"c{i}") for i in range(1500)])
    data = json.dumps(body).encode()
    assert len(data) > MAX_BATCH_BYTES
    headers = {"Authorization": f"Bearer {tokens['pump-1']}", "Content-Type": "application/json"}
    pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    content: Any = iter(pieces) if chunked else data
    response = api.post("/v1/batches", content=content, headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "body_too_large"
    assert stored(engine)["batches"] == 0


@pytest.mark.parametrize("depth", [300, 400, 500, 2000])
def test_json_nested_deep_inside_reported_sources_is_a_4xx(
    api: httpx.Client, engine: Engine, tokens: dict[str, str], depth: int
) -> None:
    nested = "[" * depth + "]" * depth
    body = json.dumps(batch(1, reported=reported(2))).replace(
        '"sources": {"serial0": {"state": "connected"}}',
        f'"sources": {{"serial0": {{"state": {nested}}}}}',
    )
    assert nested in body
    response = post_batch(api, tokens["pump-1"], body.encode())
    assert 400 <= response.status_code < 500, response.text
    assert "deep" in response.text
    assert stored(engine)["batches"] == 0


def _non_finite_bodies() -> list[Any]:
    patch = "/v1/devices/pump-1/desired"
    return [
        pytest.param("PATCH", patch, '{"version": 0, "sync_interval_s": %s}', "sync_interval_s"),
        pytest.param(
            "PATCH",
            patch,
            '{"version": 0, "alarm_overrides": {"pressure_high": {"set": %s}}}',
            "set",
        ),
        pytest.param(
            "PATCH",
            patch,
            '{"version": 0, "alarm_overrides": {"pressure_high": {"on_delay_s": %s}}}',
            "on_delay_s",
        ),
        pytest.param("POST", "/v1/devices", '{"name": %s}', "name"),
        pytest.param(
            "POST",
            "/v1/releases",
            '{"bundle_dir": "/nowhere", "version": "1.0.1", "canary_percent": %s}',
            "canary_percent",
        ),
    ]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize(("method", "path", "template", "field"), _non_finite_bodies())
def test_non_finite_numbers_in_admin_bodies_are_422_naming_the_field(
    client: httpx.Client,
    tokens: dict[str, str],
    method: str,
    path: str,
    template: str,
    field: str,
    literal: str,
) -> None:
    response = client.request(
        method,
        path,
        content=(template % literal).encode(),
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert any(loc[-1] == field for loc in _locs(response)), response.text
    desired = client.get("/v1/devices/pump-1/desired", headers=ADMIN).json()
    assert desired["version"] == 0


@pytest.mark.parametrize("depth", [400, 100_000])
@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("POST", "/v1/devices", '{"name": %s}'),
        ("PATCH", "/v1/devices/pump-1/desired", '{"version": 0, "alarm_overrides": {"r": %s}}'),
        ("POST", "/v1/releases", '{"bundle_dir": "/x", "version": "1.0.0", "device": %s}'),
    ],
)
def test_deep_json_in_admin_bodies_is_a_4xx(
    client: httpx.Client,
    tokens: dict[str, str],
    method: str,
    path: str,
    template: str,
    depth: int,
) -> None:
    nested = "[" * depth + "]" * depth
    response = client.request(
        method,
        path,
        content=(template % nested).encode(),
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"] in {"request_invalid", "bad_request"}

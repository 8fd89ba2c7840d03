"""POST /v1/batches, in process and through a real uvicorn, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select

from cloud_sync.db.models import StoredSummary
from edgetwin_contracts.batch import MAX_BATCH_BYTES, MAX_BATCH_DECOMPRESSED_BYTES
from tests.cloud_sync.conftest import (
    ADMIN,
    alarm_event,
    batch,
    bearer,
    live_server,
    post_batch,
    reported,
    stored,
    summary,
)

NOTHING = {
    "batches": 0,
    "summaries": 0,
    "alarm_events": 0,
    "alarms": 0,
    "last_sequence": 0,
    "reported": 0,
}


def test_a_resent_batch_is_stored_once(
    api: httpx.Client, engine: Engine, tokens: dict[str, str]
) -> None:
    body = batch(1, reported=reported(1))
    first = post_batch(api, tokens["pump-1"], body)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "sequence": 1,
        "duplicate": False,
        "desired": {
            "version": 0,
            "model_version": None,
            "model": None,
            "twin_version": None,
            "twin": None,
            "alarm_overrides": {},
            "sync_interval_s": None,
        },
    }
    after_first = stored(engine)
    assert after_first == {
        "batches": 1,
        "summaries": 2,
        "alarm_events": 1,
        "alarms": 1,
        "last_sequence": 1,
        "reported": 1,
    }

    again = post_batch(api, tokens["pump-1"], body)
    assert again.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True}
    assert stored(engine) == after_first
    twin = api.get("/v1/twin", headers=bearer(tokens["pump-1"])).json()
    assert twin["counters"] == {"batches": 1, "duplicates": 1, "sequence_gaps": 0}


def test_plain_json_without_content_encoding_is_accepted(
    api: httpx.Client, tokens: dict[str, str]
) -> None:
    response = post_batch(api, tokens["pump-1"], batch(1), compress=False)
    assert response.status_code == 200, response.text


def test_gap_accepted_then_lower_unseen_sequence_is_409(
    api: httpx.Client, engine: Engine, tokens: dict[str, str]
) -> None:
    token = tokens["pump-1"]
    assert post_batch(api, token, batch(1)).status_code == 200
    gap = post_batch(api, token, batch(4))
    assert gap.status_code == 200 and gap.json()["duplicate"] is False
    before = stored(engine)

    late = post_batch(api, token, batch(2, summaries=[summary(channel="late")]))
    assert late.status_code == 409
    assert "sequence 2" in late.json()["detail"] and "4" in late.json()["detail"]
    assert stored(engine) == before
    # A resend of a stored one below the highest is still a duplicate, not a conflict.
    assert post_batch(api, token, batch(1)).json()["duplicate"] is True

    twin = api.get("/v1/twin", headers=bearer(token)).json()
    assert twin["last_sequence"] == 4
    assert twin["counters"]["sequence_gaps"] == 2


def test_sequences_are_per_device(
    api: httpx.Client, engine: Engine, tokens: dict[str, str]
) -> None:
    assert post_batch(api, tokens["pump-1"], batch(5)).status_code == 200
    second = post_batch(api, tokens["pump-2"], batch(1))
    assert second.status_code == 200 and second.json()["duplicate"] is False


def test_a_later_summary_supersedes_and_alarm_state_follows_events(
    api: httpx.Client, engine: Engine, tokens: dict[str, str]
) -> None:
    token = tokens["pump-1"]
    start = time.time() - 600
    first = batch(1, summaries=[summary(start=start, mean=1.0)], alarms=[alarm_event(7)])
    second = batch(
        2,
        summaries=[summary(start=start, mean=5.0), summary(start=start + 60)],
        alarms=[alarm_event(7, "acknowledged"), alarm_event(7, "cleared")],
    )
    assert post_batch(api, token, first).status_code == 200
    assert post_batch(api, token, second).status_code == 200
    with engine.connect() as conn:
        means = (
            conn.execute(select(StoredSummary.mean).where(StoredSummary.start == start))
            .scalars()
            .all()
        )
    assert means == [5.0]
    counts = stored(engine)
    assert (counts["summaries"], counts["alarm_events"], counts["alarms"]) == (2, 3, 1)
    twin = api.get("/v1/twin", headers=bearer(token)).json()
    assert twin["open_alarms"] == []
    assert twin["last_summaries"]["pressure"]["start"] == start + 60


def _gzip_raw(data: bytes) -> bytes:
    return gzip.compress(data)


def _bad_cases() -> list[Any]:
    now = time.time()
    good = batch(1)
    huge_message = {
        **batch(1),
        "alarms": [{**alarm_event(), "alarm": {**alarm_event()["alarm"], "message": "x" * 1000}}]
        * (MAX_BATCH_DECOMPRESSED_BYTES // 1000),
    }
    return [
        pytest.param(b'{"sequence": 1,', {}, 400, "malformed JSON", id="malformed-json"),
        pytest.param(b"\xff\xfe{}", {}, 400, "UTF-8", id="not-utf8"),
        pytest.param(
            json.dumps(good).encode(), {"Content-Encoding": "gzip"}, 400, "gzip", id="not-gzip"
        ),
        pytest.param(
            _gzip_raw(json.dumps(good).encode())[:-12],
            {"Content-Encoding": "gzip"},
            400,
            "truncated",
            id="truncated-gzip",
        ),
        pytest.param(
            json.dumps({**good, "sequence": "one"}).encode(),
            {},
            422,
            "sequence",
            id="wrong-type",
        ),
        pytest.param(
            json.dumps({**good, "device": "pump-2"}).encode(),
            {},
            422,
            "device",
            id="unknown-field",
        ),
        pytest.param(
            json.dumps({**good, "summaries": [summary(mean=float("nan"))]}).encode(),
            {},
            400,
            "NaN",
            id="nan-literal",
        ),
        pytest.param(
            json.dumps(good).replace('"created_at": ', '"created_at": 1e999, "x": ', 1).encode(),
            {},
            422,
            "finite",
            id="infinite-number",
        ),
        pytest.param(
            json.dumps({**good, "sequence": 2**70}).encode(),
            {},
            422,
            "64-bit",
            id="int-out-of-range",
        ),
        pytest.param(
            json.dumps({**good, "summaries": [summary(channel="p\x00")]}).encode(),
            {},
            422,
            "NUL",
            id="nul-in-string",
        ),
        pytest.param(
            json.dumps(good).encode(),
            {"Content-Encoding": "br"},
            415,
            "br",
            id="brotli",
        ),
        pytest.param(
            b" " * (MAX_BATCH_BYTES + 1),
            {},
            413,
            "cap",
            id="oversized-body",
        ),
        pytest.param(
            _gzip_raw(json.dumps(huge_message).encode()),
            {"Content-Encoding": "gzip"},
            413,
            "inflates",
            id="oversized-decompressed",
        ),
        pytest.param(
            json.dumps({**good, "created_at": now + 2 * 86_400}).encode(),
            {},
            422,
            "clock_skew",
            id="skewed-created-at",
        ),
        pytest.param(
            json.dumps({**good, "summaries": [summary(start=now + 3 * 86_400)]}).encode(),
            {},
            422,
            "future",
            id="skewed-summary",
        ),
        pytest.param(
            json.dumps({**good, "alarms": [alarm_event(ts=now + 5 * 86_400)]}).encode(),
            {},
            422,
            "alarms",
            id="skewed-alarm",
        ),
        pytest.param(b"[]", {}, 422, "model_type", id="not-an-object"),
    ]


@pytest.mark.parametrize(("body", "headers", "status", "reason"), _bad_cases())
def test_bad_input_is_refused_with_its_reason_and_nothing_is_stored(
    api: httpx.Client,
    engine: Engine,
    tokens: dict[str, str],
    body: bytes,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    response = post_batch(api, tokens["pump-1"], body, compress=False, headers=headers)
    assert response.status_code == status, response.text
    assert reason in response.text
    if status == 422:
        assert all("loc" in problem for problem in response.json()["detail"])
    assert stored(engine) == NOTHING
    # Nothing lost either: the device's next good batch goes through.
    assert post_batch(api, tokens["pump-1"], batch(1)).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="no-token"),
        pytest.param(bearer("not-a-token"), 401, id="wrong-token"),
        pytest.param({"Authorization": "Basic cHVtcDpwdw=="}, 401, id="not-bearer"),
        pytest.param(ADMIN, 403, id="admin-token"),
    ],
)
def test_batches_need_a_device_token(
    api: httpx.Client,
    engine: Engine,
    tokens: dict[str, str],
    headers: dict[str, str],
    status: int,
) -> None:
    response = api.post("/v1/batches", json=batch(1), headers=headers)
    assert response.status_code == status
    assert response.json()["detail"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    assert stored(engine) == NOTHING


def test_gzip_bomb_is_refused_without_inflating(
    api: httpx.Client, engine: Engine, tokens: dict[str, str], gzip_bomb: bytes
) -> None:
    assert len(gzip_bomb) <= MAX_BATCH_BYTES
    response = post_batch(
        api, tokens["pump-1"], gzip_bomb, compress=False, headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert stored(engine) == NOTHING


@pytest.fixture(scope="session")
def gzip_bomb() -> bytes:
    """~200 MB of spaces in ~200 KB of gzip (under the compressed cap)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * (1 << 20)
    parts = [packer.compress(block) for _ in range(200)]
    return b"".join(parts) + packer.flush()


def test_concurrent_resends_store_once(
    app: FastAPI, engine: Engine, tokens: dict[str, str]
) -> None:
    """Eight copies of one batch at once through real uvicorn: one stored, seven duplicates."""
    body = gzip.compress(json.dumps(batch(1)).encode())
    headers = {**bearer(tokens["pump-1"]), "Content-Encoding": "gzip"}
    with (
        live_server(app) as url,
        httpx.Client(base_url=url, timeout=60) as http,
        ThreadPoolExecutor(8) as pool,
    ):
        answers = list(
            pool.map(lambda _: http.post("/v1/batches", content=body, headers=headers), range(8))
        )
    assert [a.status_code for a in answers] == [200] * 8
    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 7
    assert stored(engine)["batches"] == 1

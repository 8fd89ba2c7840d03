"""The [sync] section, and the store's sync tables: staging, acknowledging, discarding,
quarantining, and what survives a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import parse_config
from edge_agent.store import InflightBatch, OutboxKind, Store
from edge_agent.sync.batching import build_batch
from edgetwin_common.errors import ConfigInvalid
from edgetwin_contracts.batch import Batch
from tests.edge_agent.store.events import raised

from .fakecloud import gunzip
from .helpers import add_events, fill_summaries, open_store


def test_sync_is_off_by_default_and_complete_when_on() -> None:
    assert parse_config("").sync.enabled is False
    cfg = parse_config(
        '[sync]\nenabled = true\nurl = "https://cloud.example.com/"\ntoken = "s3cret"\n'
    ).sync
    assert cfg.url == "https://cloud.example.com" and cfg.token is not None
    assert "s3cret" not in repr(cfg)  # the token is a secret


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ('enabled = true\ntoken = "t"', "sync", "url is required"),
        ('enabled = true\nurl = "https://c"', "sync", "token is required"),
        ('url = "ftp://c"', "sync.url", "http:// or https://"),
        ("backoff = { initial_s = 10, max_s = 5 }", "sync.backoff", "initial_s must be <="),
        ("backoff_min_s = 10\nbackoff_max_s = 5", "sync.backoff", "initial_s must be <="),
        ("backoff_min_s = 1\nbackoff = { initial_s = 2 }", "sync", "old spelling of backoff"),
        ("interval_s = 0", "sync.interval_s", "greater than or equal to 1"),
        ("retries = 3", "sync.retries", "Extra inputs"),
    ],
)
def test_sync_config_problems_name_their_key(body: str, path: str, message: str) -> None:
    with pytest.raises(ConfigInvalid) as info:
        parse_config(f"[sync]\n{body}\n")
    assert any(p.path == path and message in str(p) for p in info.value.problems), (
        info.value.problems
    )


def test_stage_commit_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with open_store(path) as store:
        fill_summaries(store, 5)
        rows = store.outbox_pending(3)
        built = build_batch(1, 100.0, rows, None)
        store.sync_stage(built.batch)
        with pytest.raises(ValueError, match="already in flight"):
            store.sync_stage(built.batch)
    with open_store(path) as store:  # survives a restart, byte for byte
        inflight = store.sync_inflight()
        assert inflight == built.batch
        assert store.meta_int("sync_sequence") == 1
        assert store.stats().outbox_rows["summary"] == 5
        assert store.sync_commit(1) == 3
        assert store.sync_commit(1) == 0  # a repeated ack changes nothing
        assert store.sync_inflight() is None
        assert store.stats().outbox_rows["summary"] == 2
        assert store.meta_int("sync_acked_sequence") == 1


def test_discard_keeps_rows_and_quarantine_moves_them(store: Store) -> None:
    fill_summaries(store, 4)
    rows = store.outbox_pending()
    store.sync_stage(InflightBatch(7, 1.0, b"x", tuple(r.id for r in rows), 0, 4, None))
    store.sync_discard(7)
    assert store.sync_inflight() is None and store.stats().outbox_rows["summary"] == 4
    assert store.meta_int("sync_sequence") == 7  # never reused
    assert store.sync_quarantine([rows[0].id, 999_999], "bad") == 1
    assert store.stats().outbox_rows["summary"] == 3
    assert [(r.id, why) for r, why in store.sync_quarantined()] == [(rows[0].id, "bad")]
    assert store.meta_int("sync_quarantined") == 1


def test_outbox_drops_are_counted_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    for _ in range(2):
        with open_store(path, outbox_max_rows=100) as store:
            fill_summaries(store, 150)
    with open_store(path) as store:
        assert store.outbox_dropped_total() >= 100


def test_build_batch_orders_bounds_and_refuses(store: Store) -> None:
    fill_summaries(store, 50)
    add_events(store, [raised(i, 1.0 + i) for i in range(1, 4)])
    with store._db.locked() as conn:  # a row the contract refuses (count must be >= 1)
        conn.execute(
            "UPDATE outbox SET payload = replace(payload, '\"count\":1', '\"count\":0')"
            " WHERE id = (SELECT min(id) FROM outbox WHERE kind = 'summary')"
        )
    rows = store.outbox_pending()
    built = build_batch(9, 5.0, rows, None, max_json_bytes=5000)
    assert len(built.refused) == 1 and "count" in built.refused[0][1]
    batch = Batch.model_validate(gunzip(built.batch.body))
    assert batch.sequence == 9 and len(batch.alarms) == 3
    assert 0 < len(batch.summaries) < 49
    assert len(built.batch.row_ids) == built.batch.alarm_rows + built.batch.summary_rows
    kinds = {r.id: r.kind for r in rows}
    assert [kinds[i] for i in built.batch.row_ids][:3] == [OutboxKind.ALARM] * 3
    assert build_batch(9, 5.0, rows, None, max_json_bytes=5000).batch.body == built.batch.body

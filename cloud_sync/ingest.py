"""Batch ingest: decode (size caps, gzip), validate (schema, clock skew), store once.

Three steps, each raising a ``RequestRejected`` with its status, so a rejected batch
stores nothing:

1. ``decode_body`` (``cloud_sync.wire``) — at most MAX_BATCH_BYTES on the wire; gzip
   inflated incrementally and stopped one byte past MAX_BATCH_DECOMPRESSED_BYTES, so a
   gzip bomb never inflates in memory.
2. ``parse_batch`` — strict JSON (no NaN/Infinity), values the databases can hold
   (finite floats, 64-bit integers, no NUL in strings, nesting at most MAX_BODY_DEPTH:
   ``cloud_sync.wire``), the contract model (strict types), and every timestamp between
   MIN_TIMESTAMP and ``max_future_skew_s`` in the future of the server clock.
3. ``store_batch`` — one transaction per batch, keyed by (device, sequence); a sequence
   more than MAX_SEQUENCE_JUMP past the last stored one is refused (422).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, Row, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from cloud_sync.db.models import Device, StoredAlarm, StoredAlarmEvent, StoredBatch, StoredSummary
from cloud_sync.db.session import write_lock
from cloud_sync.errors import (
    BatchInvalid,
    SequenceOutOfOrder,
    TokenRejected,
)
from cloud_sync.wire import (
    check_content_length,
    decode_body,
    parse_json,
    problem,
    storable_problems,
)
from edgetwin_contracts.batch import (
    MAX_SEQUENCE_JUMP,
    MIN_TIMESTAMP,
    Batch,
    BatchAck,
    DesiredState,
)

__all__ = [
    "IngestResult",
    "body_digest",
    "check_content_length",
    "decode_body",
    "parse_batch",
    "store_batch",
]

log = logging.getLogger(__name__)


def parse_batch(data: bytes, now: float, max_future_skew_s: float) -> Batch:
    """Validate decoded JSON against the contract and the server clock (UNIX seconds).

    Raises BodyMalformed (400) or BatchInvalid (422, a list of located problems).
    """
    obj = parse_json(data)
    problems = storable_problems(obj)
    if problems:
        raise BatchInvalid(problems)
    try:
        batch = Batch.model_validate(obj)
    except ValidationError as exc:
        raise BatchInvalid(
            [
                {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
                for err in exc.errors(include_url=False, include_input=False)
            ]
        ) from None
    latest = now + max_future_skew_s
    skewed = [
        problem(
            ("body", *loc),
            f"timestamp {ts} is {ts - now:.0f} s in the future of the server clock "
            f"(at most {max_future_skew_s:.0f} s allowed): check the device clock",
            "clock_skew",
        )
        if ts > latest
        else problem(
            ("body", *loc),
            f"timestamp {ts} is before {MIN_TIMESTAMP:.0f} (2000-01-01): check the device clock",
            "timestamp_range",
        )
        for loc, ts in _timestamps(batch)
        if not MIN_TIMESTAMP <= ts <= latest
    ]
    if skewed:
        raise BatchInvalid(skewed)
    return batch


def _timestamps(batch: Batch) -> Iterator[tuple[tuple[str | int, ...], float]]:
    yield ("created_at",), batch.created_at
    for i, event in enumerate(batch.alarms):
        yield ("alarms", i, "ts"), event.ts
        yield ("alarms", i, "alarm", "raised_at"), event.alarm.raised_at
        for key in ("acked_at", "cleared_at"):
            value = getattr(event.alarm, key)
            if value is not None:
                yield ("alarms", i, "alarm", key), value
        window = event.alarm.reason.window if event.alarm.reason is not None else None
        if window is not None:  # ts ascend (the contract): the ends bound them all
            at = ("alarms", i, "alarm", "reason", "window")
            for j in {0, len(window.ts) - 1} if window.ts else ():
                yield (*at, "ts", j), window.ts[j]
            if window.forecast_ts is not None:
                yield (*at, "forecast_ts"), window.forecast_ts
    for i, summary in enumerate(batch.summaries):
        yield ("summaries", i, "start"), summary.start
        yield ("summaries", i, "end"), summary.end
        yield ("summaries", i, "last_ts"), summary.last_ts


@dataclass(frozen=True, slots=True)
class IngestResult:
    ack: BatchAck
    stored_summaries: int
    stored_alarm_events: int


def store_batch(
    engine: Engine,
    device_id: int,
    batch: Batch,
    body_sha256: str,
    now: float,
    token_sha256: str | None = None,
) -> IngestResult:
    """Store a validated batch once, in one transaction; answer with the desired state.

    A (device, sequence) stored before → duplicate (nothing written but the counter);
    a sequence below the highest stored and never seen → SequenceOutOfOrder (409);
    an upward gap is accepted and counted. Concurrent replicas: the device row is locked
    first and the unique (device, sequence) constraint backs it up: an IntegrityError
    means another replica stored this batch, so it is answered as a duplicate.

    ``token_sha256``: also require that the device still holds this token (checked on
    the locked row, so a token rotated since the caller authenticated stores nothing:
    TokenRejected, 401). SQLite: writers of this process queue on one lock
    (``session.write_lock``) instead of sleeping in SQLite's busy handler.
    """
    with write_lock(engine):
        try:
            with engine.begin() as conn:
                return _store(conn, device_id, batch, body_sha256, now, token_sha256)
        except IntegrityError:
            log.info(
                "batch %d of device %d stored concurrently: duplicate", batch.sequence, device_id
            )
            with engine.begin() as conn:
                device = _lock_device(conn, device_id, token_sha256)
                ack = _duplicate(conn, device_id, device, batch, body_sha256, now)
            return IngestResult(ack, 0, 0)


@dataclass(frozen=True, slots=True)
class _Statements:
    """The ingest statements, built once per dialect: SQLAlchemy then finds their compiled
    form in its cache by identity instead of building and hashing expressions per batch."""

    lock_device: Any
    lock_device_token: Any
    seen: Any
    insert_batch: Any
    insert_alarm_events: Any
    upsert_alarms: Any
    upsert_summaries: Any
    update_device: Any
    update_device_reported: Any
    update_duplicate: Any


_STATEMENTS: dict[str, _Statements] = {}


def _statements(dialect: str) -> _Statements:
    found = _STATEMENTS.get(dialect)
    if found is None:
        found = _STATEMENTS[dialect] = _build_statements(dialect)
    return found


def _build_statements(dialect: str) -> _Statements:
    # Row lock (PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers) so that
    # ingests of one device see each other's last_sequence. The desired state comes with
    # it: ingest never changes it, and a PATCH waits for the lock.
    lock = select(
        Device.last_sequence, Device.reported_version, Device.desired, Device.desired_version
    ).where(Device.id == bindparam("device_id"))
    update_fresh = update(Device).where(Device.id == bindparam("device_id"))
    fresh_values: dict[str, Any] = {
        "last_seen": bindparam("p_now"),
        "last_sequence": bindparam("p_last_sequence"),
        "batches": Device.batches + 1,
        "sequence_gaps": Device.sequence_gaps + bindparam("p_gap"),
    }
    return _Statements(
        lock_device=lock.with_for_update(),
        lock_device_token=lock.where(Device.token_sha256 == bindparam("token")).with_for_update(),
        seen=select(StoredBatch.body_sha256).where(
            StoredBatch.device_id == bindparam("device_id"),
            StoredBatch.sequence == bindparam("sequence"),
        ),
        insert_batch=insert(StoredBatch),
        insert_alarm_events=insert(StoredAlarmEvent),
        upsert_alarms=_upsert(dialect, StoredAlarm.__table__, ("device_id", "alarm_id")),
        upsert_summaries=_upsert(
            dialect, StoredSummary.__table__, ("device_id", "channel", "start")
        ),
        update_device=update_fresh.values(fresh_values),
        update_device_reported=update_fresh.values(
            {
                **fresh_values,
                "reported": bindparam("p_reported", type_=Device.reported.type),
                "reported_version": bindparam("p_reported_version"),
            }
        ),
        update_duplicate=update(Device)
        .where(Device.id == bindparam("device_id"))
        .values(last_seen=bindparam("p_now"), duplicates=Device.duplicates + 1),
    )


def _upsert(dialect: str, table: Any, keys: tuple[str, ...]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, on SQLite and PostgreSQL alike."""
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = dialect_insert(table)
    updated = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in {*keys, "id"}}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=updated)


def _lock_device(conn: Connection, device_id: int, token_sha256: str | None) -> Row[Any]:
    statements = _statements(conn.dialect.name)
    if token_sha256 is None:
        row = conn.execute(statements.lock_device, {"device_id": device_id}).first()
    else:
        row = conn.execute(
            statements.lock_device_token, {"device_id": device_id, "token": token_sha256}
        ).first()
    if row is None:
        raise TokenRejected("unknown token: no device and not the admin")
    return row


def _store(
    conn: Connection,
    device_id: int,
    batch: Batch,
    body_sha256: str,
    now: float,
    token_sha256: str | None,
) -> IngestResult:
    statements = _statements(conn.dialect.name)
    device = _lock_device(conn, device_id, token_sha256)
    sequence = batch.sequence
    last_sequence: int = device.last_sequence
    # last_sequence is the highest sequence stored (updated under the row lock in the
    # transaction that stores it), so only a sequence not above it can have been seen.
    if sequence <= last_sequence:
        seen = conn.execute(statements.seen, {"device_id": device_id, "sequence": sequence})
        if seen.first() is not None:
            ack = _duplicate(conn, device_id, device, batch, body_sha256, now)
            return IngestResult(ack, 0, 0)
        if sequence < last_sequence:
            raise SequenceOutOfOrder(
                f"sequence {sequence} is below the highest stored sequence "
                f"{last_sequence} and was never stored: out of order, not retried"
            )
    gap = sequence - last_sequence - 1
    if gap >= MAX_SEQUENCE_JUMP:
        # Storing it would move last_sequence out of the device's reach for good.
        raise BatchInvalid(
            [
                problem(
                    ("body", "sequence"),
                    f"sequence {sequence} is more than {MAX_SEQUENCE_JUMP} past the last "
                    f"stored sequence {last_sequence}: refused",
                    "sequence_jump",
                )
            ]
        )
    if gap > 0 and last_sequence > 0:
        log.warning("device %d skipped %d batch(es) before sequence %d", device_id, gap, sequence)
    conn.execute(
        statements.insert_batch,
        {
            "device_id": device_id,
            "sequence": sequence,
            "created_at": batch.created_at,
            "received_at": now,
            "body_sha256": body_sha256,
            "summaries": len(batch.summaries),
            "alarm_events": len(batch.alarms),
        },
    )
    # Alarms travel before summaries in the batch; store them in that order too.
    if batch.alarms:
        _store_alarms(conn, statements, device_id, batch)
    if batch.summaries:
        _store_summaries(conn, statements, device_id, batch)
    params: dict[str, Any] = {
        "device_id": device_id,
        "p_now": now,
        "p_last_sequence": max(last_sequence, sequence),
        "p_gap": max(gap, 0),
    }
    reported = batch.reported
    if reported is not None and (
        device.reported_version is None or reported.version > device.reported_version
    ):
        params["p_reported"] = reported.model_dump(mode="json")
        params["p_reported_version"] = reported.version
        conn.execute(statements.update_device_reported, params)
    else:
        conn.execute(statements.update_device, params)
    ack = BatchAck(sequence=sequence, duplicate=False, desired=_desired(device))
    return IngestResult(ack, len(batch.summaries), len(batch.alarms))


def _store_alarms(conn: Connection, statements: _Statements, device_id: int, batch: Batch) -> None:
    """Append the batch's alarm events; upsert each alarm's latest state."""
    events = [(e, e.alarm.model_dump(mode="json")) for e in batch.alarms]
    conn.execute(
        statements.insert_alarm_events,
        [
            {
                "device_id": device_id,
                "sequence": batch.sequence,
                "kind": e.kind,
                "ts": e.ts,
                "alarm_id": e.alarm.id,
                "alarm": alarm,
            }
            for e, alarm in events
        ],
    )
    # The last event of an alarm in the batch is its current state.
    latest = {e.alarm.id: (e, alarm) for e, alarm in events}
    conn.execute(
        statements.upsert_alarms,
        [
            {
                "device_id": device_id,
                "alarm_id": e.alarm.id,
                "state": e.alarm.state,
                "severity": e.alarm.severity,
                "updated_ts": e.ts,
                "alarm": alarm,
            }
            for e, alarm in latest.values()
        ],
    )


def _store_summaries(
    conn: Connection, statements: _Statements, device_id: int, batch: Batch
) -> None:
    """Upsert the batch's summaries by (channel, start)."""
    # A later record for the same (channel, start) supersedes, inside a batch too.
    latest = {(s.channel, s.start): s for s in batch.summaries}
    conn.execute(
        statements.upsert_summaries,
        [
            {"device_id": device_id, "sequence": batch.sequence, **s.model_dump()}
            for s in latest.values()
        ],
    )


def _desired(device: Row[Any]) -> DesiredState:
    """The desired state from the locked device row (what ``twin.desired_state`` reads)."""
    return DesiredState.model_validate({**device.desired, "version": device.desired_version})


def _duplicate(
    conn: Connection,
    device_id: int,
    device: Row[Any],
    batch: Batch,
    body_sha256: str,
    now: float,
) -> BatchAck:
    statements = _statements(conn.dialect.name)
    stored = conn.execute(
        statements.seen, {"device_id": device_id, "sequence": batch.sequence}
    ).scalar()
    if stored is not None and stored != body_sha256:
        # The contract says a resend is byte-for-byte the batch; the first one stands.
        log.warning(
            "device %d resent batch %d with different content; kept the first",
            device_id,
            batch.sequence,
        )
    conn.execute(statements.update_duplicate, {"device_id": device_id, "p_now": now})
    return BatchAck(sequence=batch.sequence, duplicate=True, desired=_desired(device))


def body_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

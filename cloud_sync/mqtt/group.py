"""Several devices' batches in one database transaction: the MQTT bridge's group
commit, on the same statements as every other ingest (``cloud_sync.ingest``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from cloud_sync.db.session import write_lock
from cloud_sync.errors import RequestRejected
from cloud_sync.ingest import IngestResult, _duplicate, _lock_device, _store
from edgetwin_contracts.batch import Batch

__all__ = ["Pending", "store_batches"]


@dataclass(frozen=True, slots=True)
class Pending:
    """One validated batch waiting to be stored with others."""

    device_id: int
    batch: Batch
    body_sha256: str


def store_batches(
    engine: Engine, pending: list[Pending], now: float
) -> list[IngestResult | RequestRejected]:
    """Store the batches in one transaction (one commit for all), each in a savepoint
    of its own, so that one refused batch (SequenceOutOfOrder) or one stored meanwhile
    by another replica (answered duplicate) leaves the others alone. Results in the
    order given. Device rows are locked in id order, so replicas grouping the same
    devices cannot deadlock. Exactly once holds as with ``store_batch``: the caller
    acknowledges nothing before this returns, committed. Raises SQLAlchemyError when
    the transaction fails (then nothing is stored and nothing may be acknowledged)."""
    order = sorted(range(len(pending)), key=lambda i: pending[i].device_id)
    results: dict[int, IngestResult | RequestRejected] = {}
    with write_lock(engine), engine.begin() as conn:
        for i in order:
            item = pending[i]
            try:
                with conn.begin_nested():
                    results[i] = _store(
                        conn, item.device_id, item.batch, item.body_sha256, now, None
                    )
            except RequestRejected as exc:
                results[i] = exc
            except IntegrityError:
                # Another replica committed this (device, sequence) meanwhile.
                device = _lock_device(conn, item.device_id, None)
                ack = _duplicate(conn, item.device_id, device, item.batch, item.body_sha256, now)
                results[i] = IngestResult(ack, 0, 0)
    return [results[i] for i in range(len(pending))]

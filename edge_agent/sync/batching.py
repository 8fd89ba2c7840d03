"""Outbox rows → one size-bounded, gzip-compressed ``Batch`` (docs/sync.md).

Rows come in the outbox's drain order (alarm events oldest first, then summaries oldest
first) and are taken in that order until the next one would not fit, so an alarm is
never passed over for a summary. A row the device's own copy of the wire contract
refuses (it could never be accepted) is set aside for quarantine instead of sent.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from edge_agent.store.outbox import OutboxKind, OutboxRow
from edge_agent.store.sync_staging import InflightBatch
from edgetwin_contracts.batch import (
    MAX_BATCH_BYTES,
    MAX_BATCH_DECOMPRESSED_BYTES,
    AlarmEventRecord,
    Batch,
    ReportedState,
    SummaryRecord,
)

GZIP_LEVEL = 6
"""zlib's default: JSON of floats shrinks ~3-5x; higher levels cost CPU for little."""


@dataclass(frozen=True, slots=True)
class BuiltBatch:
    batch: InflightBatch
    """The batch to stage and send (it may carry no rows: only a reported state)."""
    refused: list[tuple[int, str]] = field(default_factory=list)
    """Outbox rows that can never be sent (id, reason): quarantine them."""

    @property
    def rows(self) -> int:
        return len(self.batch.row_ids)


def build_batch(
    sequence: int,
    created_at: float,
    rows: Sequence[OutboxRow],
    reported: ReportedState | None,
    *,
    max_json_bytes: int = MAX_BATCH_DECOMPRESSED_BYTES,
    max_gzip_bytes: int = MAX_BATCH_BYTES,
) -> BuiltBatch:
    """Pack a prefix of ``rows`` (already in drain order) into one batch.

    The batch's JSON is at most ``max_json_bytes`` (capped by the contract's
    MAX_BATCH_DECOMPRESSED_BYTES) and its gzip body at most ``max_gzip_bytes`` (capped by
    MAX_BATCH_BYTES). Rows that fail validation, or that would not fit even alone, are
    returned in ``refused``. The body is deterministic (gzip mtime 0).
    """
    max_json = min(max_json_bytes, MAX_BATCH_DECOMPRESSED_BYTES)
    max_gzip = min(max_gzip_bytes, MAX_BATCH_BYTES)
    envelope = Batch(sequence=sequence, created_at=created_at, reported=reported)
    budget = max_json - len(envelope.model_dump_json())
    refused: list[tuple[int, str]] = []
    taken: list[tuple[OutboxRow, AlarmEventRecord | SummaryRecord]] = []
    used = 0
    for row in rows:
        try:
            record: AlarmEventRecord | SummaryRecord
            if row.kind is OutboxKind.ALARM:
                record = AlarmEventRecord.model_validate_json(row.payload)
            else:
                record = SummaryRecord.model_validate_json(row.payload)
        except ValidationError as exc:
            refused.append((row.id, f"invalid {row.kind.value} row: {_brief(exc)}"))
            continue
        size = len(record.model_dump_json()) + 1  # + the comma
        if size > budget:
            refused.append((row.id, f"{row.kind.value} row of {size} bytes exceeds a batch"))
            continue
        if used + size > budget:
            break
        taken.append((row, record))
        used += size
    while True:
        batch = Batch(
            sequence=sequence,
            created_at=created_at,
            alarms=[r for _, r in taken if isinstance(r, AlarmEventRecord)],
            summaries=[r for _, r in taken if isinstance(r, SummaryRecord)],
            reported=reported,
        )
        body = batch.model_dump_json().encode()
        compressed = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        if (len(body) <= max_json and len(compressed) <= max_gzip) or not taken:
            break
        # Incompressible enough to pass the gzip cap (rare: JSON shrinks well): shed the
        # newest quarter and try again.
        del taken[len(taken) - max(1, len(taken) // 4) :]
    return BuiltBatch(
        InflightBatch(
            sequence=sequence,
            created_at=created_at,
            body=compressed,
            row_ids=tuple(row.id for row, _ in taken),
            alarm_rows=len(batch.alarms),
            summary_rows=len(batch.summaries),
            reported_version=None if reported is None else reported.version,
        ),
        refused,
    )


def _brief(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3])

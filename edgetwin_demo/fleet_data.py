"""A simulated fleet's synced data: the pump simulator's 1 Hz readings, summarised per
interval as a device's store does (count, mean, min, max, std, last of each aligned
interval) and stored in the cloud through its own ingest (``store_batch``, sequence by
sequence), so the cloud's retrain reads them exactly as it reads a real device's.

Used by bench/twin_retrain.py and the twin retrain tests. The load is the drive's own
output (``report_load``: what the twin's control channel reads on a device); an
operator's setpoint plan (``operator_plan``) gives the data load steps, which the
pump's slow demand cycle alone never has.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine

from edge_agent.simulator.command import LoadCommand
from edge_agent.simulator.pump import SimulatorSettings, iter_frames
from edgetwin_contracts.batch import Batch, SummaryRecord

CHANNELS = ("bearing_temp", "vibration", "current", "ambient", "load")
"""The pump's sensors and its load, as the twin reads them."""
T0 = 1_767_225_600.0
"""2026-01-01 00:00 UTC: where the simulated time starts (a multiple of every period)."""


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    """One device of the fleet.

    settings: the simulator's (seed, faults, duration; read at 1 Hz).
    plan: (seconds from start, load setpoint or None to release) changes in time order.
    channels: the channels the device syncs (leave one out: a device without it).
    """

    name: str
    settings: SimulatorSettings
    plan: tuple[tuple[float, float | None], ...] = ()
    channels: tuple[str, ...] = CHANNELS


def operator_plan(
    seed: int, duration_s: float, every_s: tuple[float, float] = (1200.0, 5400.0)
) -> tuple[tuple[float, float | None], ...]:
    """An operator's setpoints: every 20 to 90 minutes a new load limit in [0.3, 1.0],
    one time in four released (the demand alone)."""
    rng = random.Random(f"operator-plan:{seed}")
    plan: list[tuple[float, float | None]] = []
    t = rng.uniform(*every_s)
    while t < duration_s:
        value = None if rng.random() < 0.25 else round(rng.uniform(0.3, 1.0), 3)
        plan.append((t, value))
        t += rng.uniform(*every_s)
    return tuple(plan)


def simulated_readings(device: SimulatedDevice) -> tuple[np.ndarray, np.ndarray]:
    """(times (N,) UNIX s, values (N, len(device.channels))) of the run at 1 Hz."""
    command = LoadCommand()
    pending = list(device.plan)
    times: list[float] = []
    rows: list[list[float]] = []
    for frame in iter_frames(device.settings, command=command):
        while pending and pending[0][0] <= frame.t:
            command.set(pending.pop(0)[1])
        reading = frame.reported.as_dict()
        reading["load"] = frame.load
        times.append(T0 + frame.t)
        rows.append([reading[c] for c in device.channels])
    return np.asarray(times), np.asarray(rows)


def summaries(
    times: np.ndarray, values: np.ndarray, channels: Sequence[str], interval_s: float = 60.0
) -> list[SummaryRecord]:
    """The store's interval summaries of the readings: one per channel and aligned
    interval that holds a reading."""
    slot = np.floor(times / interval_s + 1e-9).astype(np.int64)
    edges = np.flatnonzero(np.diff(slot)) + 1
    records = []
    for part in np.split(np.arange(len(times)), edges):
        if len(part) == 0:
            continue
        start = float(slot[part[0]] * interval_s)
        for j, channel in enumerate(channels):
            v = values[part, j]
            records.append(
                SummaryRecord(
                    channel=channel,
                    start=start,
                    end=start + interval_s,
                    interval_s=interval_s,
                    count=len(v),
                    min=float(v.min()),
                    max=float(v.max()),
                    mean=float(v.mean()),
                    std=float(v.std()),
                    last=float(v[-1]),
                    last_ts=float(times[part[-1]]),
                )
            )
    return records


def sync(
    engine: Engine, device: str, records: Iterable[SummaryRecord], per_batch: int = 2000
) -> int:
    """Store ``records`` for the registered ``device`` through the cloud's ingest, in
    batches of ``per_batch`` (sequences 1, 2, ... after the last one stored); the
    number of batches."""
    from sqlalchemy import func, select

    from cloud_sync.db.models import StoredBatch
    from cloud_sync.ingest import store_batch
    from cloud_sync.registry import device_id

    ident = device_id(engine, device)
    with engine.connect() as conn:
        last = conn.scalar(
            select(func.max(StoredBatch.sequence)).where(StoredBatch.device_id == ident)
        )
    sequence = int(last or 0)
    items = list(records)
    count = 0
    for i in range(0, len(items), per_batch):
        chunk = items[i : i + per_batch]
        sequence += 1
        created = max(r.end for r in chunk)
        batch = Batch(sequence=sequence, created_at=created, summaries=chunk)
        body = hashlib.sha256(batch.model_dump_json().encode()).hexdigest()
        store_batch(engine, ident, batch, body, now=created)
        count += 1
    return count


def sync_simulated(engine: Engine, device: SimulatedDevice, interval_s: float = 60.0) -> int:
    """Register ``device`` when new, run it and store its summaries; the summaries stored."""
    from cloud_sync.errors import DeviceExists
    from cloud_sync.registry import add_device

    with contextlib.suppress(DeviceExists):  # a device synced before: more data
        add_device(engine, device.name)
    times, values = simulated_readings(device)
    records = summaries(times, values, device.channels, interval_s)
    sync(engine, device.name, records)
    return len(records)

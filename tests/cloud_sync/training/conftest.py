"""A real SQLite database with synthetic summaries, and a small [training] config."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, insert, select, update

from cloud_sync.config import CloudConfig, DatabaseSection, TrainingSection
from cloud_sync.db.models import Device, StoredSummary
from cloud_sync.db.session import make_engine, upgrade
from cloud_sync.registry import add_device

INTERVAL_S = 60.0
T0 = 1_767_225_600.0  # 2026-01-01


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def config(tmp_path: Path) -> CloudConfig:
    return CloudConfig(
        database=DatabaseSection(url=f"sqlite:///{tmp_path / 'cloud.db'}"),
        training=TrainingSection(
            reports_dir=tmp_path / "reports",
            min_summaries=200,
            pretrain_epochs=1,
            finetune_epochs=1,
            # One small step: these tests are about the pipeline, not the fit, and a
            # large first step can make an int8 conversion refuse (no candidate bundle).
            finetune_learning_rate=3e-4,
            n_workers=2,
        ),
    )


def wave(n: int, seed: int, level: float = 50.0) -> np.ndarray:
    """A noisy cycle: forecastable, but not by the naive last value alone."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return level + 5.0 * np.sin(2 * np.pi * t / 24.0 + seed) + rng.normal(0, 0.3, n)


def insert_summaries(
    engine: Engine,
    device: str,
    channel: str,
    means: np.ndarray,
    *,
    skip: frozenset[int] = frozenset(),
    counts: np.ndarray | None = None,
    start_offset_s: float = 0.0,
) -> None:
    """One summary per slot (slots in ``skip`` left out: a gap)."""
    with engine.begin() as conn:
        device_id = conn.scalar(select(Device.id).where(Device.name == device))
        rows = []
        for i, mean in enumerate(means):
            if i in skip:
                continue
            start = T0 + start_offset_s + i * INTERVAL_S
            rows.append(
                {
                    "device_id": device_id,
                    "sequence": 1,
                    "channel": channel,
                    "start": start,
                    "end": start + INTERVAL_S,
                    "interval_s": INTERVAL_S,
                    "count": int(counts[i]) if counts is not None else 60,
                    "min": float(mean) - 1,
                    "max": float(mean) + 1,
                    "mean": float(mean),
                    "std": 0.5,
                    "last": float(mean),
                    "last_ts": start + INTERVAL_S - 1,
                    "error_count": 0,
                }
            )
        if rows:
            conn.execute(insert(StoredSummary), rows)


def report_model(engine: Engine, device: str, name: str, version: str, sha256: str) -> None:
    reported = {
        "version": 1,
        "agent_version": "0.1.0",
        "model": {"name": name, "version": version, "sha256": sha256},
        "config_hash": "x",
    }
    with engine.begin() as conn:
        conn.execute(
            update(Device)
            .where(Device.name == device)
            .values(reported=reported, reported_version=1)
        )


def report_twin(engine: Engine, device: str, name: str, version: str, sha256: str) -> None:
    """The device reports the generic forecaster and this twin."""
    reported = {
        "version": 1,
        "agent_version": "0.1.0",
        "model": {"name": "edgetwin-generic-forecaster", "version": "1.0.0", "sha256": "0" * 64},
        "twin": {"name": name, "version": version, "sha256": sha256},
        "config_hash": "x",
    }
    with engine.begin() as conn:
        conn.execute(
            update(Device)
            .where(Device.name == device)
            .values(reported=reported, reported_version=1)
        )


@pytest.fixture
def device_with_data(db: Engine) -> Callable[..., str]:
    def make(name: str, n: int = 300, seed: int = 0, channels: int = 2) -> str:
        add_device(db, name)
        for c in range(channels):
            insert_summaries(db, name, f"ch{c}", wave(n, seed + 10 * c, level=20.0 + 30 * c))
        return name

    return make

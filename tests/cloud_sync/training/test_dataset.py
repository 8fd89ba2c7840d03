"""Training windows from stored summaries: grid, gaps, weighting, time split, skips."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine

from cloud_sync.errors import DeviceNotFound
from cloud_sync.registry import add_device
from cloud_sync.training.dataset import DeviceWindows, Skip, device_windows, load_series
from edgetwin_contracts.manifest import Normalization
from model_export.dataset import WindowSpec
from tests.cloud_sync.training.conftest import INTERVAL_S, T0, insert_summaries

SPEC = WindowSpec()
NORM = Normalization()


def _windows(engine: Engine, device: str, min_summaries: int = 200) -> DeviceWindows | Skip:
    return device_windows(load_series(engine, device), SPEC, min_summaries, NORM)


def test_ramp_windows_never_cross_a_gap_or_the_split(db: Engine) -> None:
    add_device(db, "pump-1")
    gap = frozenset(range(100, 105))
    insert_summaries(db, "pump-1", "flow", np.arange(400.0), skip=gap)
    series = load_series(db, "pump-1")
    (ch,) = series.channels
    assert series.interval_s == INTERVAL_S
    assert ch.slots == 400 and ch.gaps == 5 and ch.summaries == 395
    assert np.isnan(ch.values[100:105]).all()

    w = _windows(db, "pump-1")
    assert isinstance(w, DeviceWindows)
    cut = SPEC.split_point(400)  # 320
    for part in (w.train, w.held_out):
        # On a ramp a window is consecutive iff it never jumped a gap.
        np.testing.assert_array_equal(
            part.inputs, part.inputs[:, :1] + np.arange(SPEC.window_length)
        )
        np.testing.assert_array_equal(part.targets, part.inputs[:, -1:] + np.asarray(SPEC.horizons))
    assert not np.any((w.train.inputs >= 100) & (w.train.inputs <= 104))
    assert w.train.targets.max() < cut, "a training target reaches into the held-out part"
    assert w.held_out.inputs.min() >= cut
    # Windows ending before the gap: its left run is 0..99 (100 slots -> 53 windows);
    # the right run is 105..319 (215 slots -> 168 windows).
    assert len(w.train) == (100 - SPEC.span + 1) + (cut - 105 - SPEC.span + 1)
    assert len(w.held_out) == 400 - cut - SPEC.span + 1
    np.testing.assert_allclose(w.held_out_ts, T0 + (w.held_out.inputs[:, -1] + 1) * INTERVAL_S)
    assert w.summaries == 395 and w.channels == ("flow",)


def test_summaries_in_one_slot_are_count_weighted(db: Engine) -> None:
    add_device(db, "pump-2")
    insert_summaries(db, "pump-2", "t", np.array([0.0, 10.0]), counts=np.array([1, 1]))
    insert_summaries(
        db, "pump-2", "t", np.array([4.0]), counts=np.array([3]), start_offset_s=INTERVAL_S / 2
    )
    (ch,) = load_series(db, "pump-2").channels
    # Slot 0: (1 x 0 + 3 x 4) / 4 = 3; slot 1: 10.
    np.testing.assert_allclose(ch.values, [3.0, 10.0])


def test_too_little_data_is_a_skip_with_its_reason(db: Engine) -> None:
    add_device(db, "small")
    insert_summaries(db, "small", "p", np.arange(150.0))
    skip = _windows(db, "small")
    assert isinstance(skip, Skip)
    assert "too little data" in skip.reason and "150 summaries" in skip.reason

    add_device(db, "empty")
    assert _windows(db, "empty") == Skip("empty", "no summaries stored for this device")

    add_device(db, "gappy")  # enough summaries, but a gap every 40 slots: no window fits
    insert_summaries(db, "gappy", "p", np.arange(400.0), skip=frozenset(range(0, 400, 40)))
    gappy = _windows(db, "gappy")
    assert isinstance(gappy, Skip)
    assert "0 training and 0 held-out windows" in gappy.reason


def test_short_channels_are_left_out_with_a_reason(db: Engine) -> None:
    add_device(db, "mixed")
    insert_summaries(db, "mixed", "long", np.arange(300.0))
    insert_summaries(db, "mixed", "short", np.arange(50.0))
    w = _windows(db, "mixed")
    assert isinstance(w, DeviceWindows)
    assert w.channels == ("long", "short")
    assert set(w.held_out_channel.tolist()) == {0}
    assert "fewer than min_summaries 200" in w.skipped_channels["short"]


def test_unknown_device(db: Engine) -> None:
    with pytest.raises(DeviceNotFound):
        load_series(db, "nobody")

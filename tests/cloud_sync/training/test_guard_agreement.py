"""Same scale on both sides: a model with a 60 s period on a 10 Hz sensor. The device's
live guard measures it on the 60 s means the device feeds it; the cloud measures it on
held-out windows of the 60 s summaries the device synced. Both are the MAE of the same
model on the same series, so per horizon they agree (target: within 20 %)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud_sync.training.dataset import DeviceSeries, DeviceWindows, _grid, device_windows
from cloud_sync.training.task import channel_scores, int8_forecasts
from edge_agent.alarms.engine import AlarmEngine
from edge_agent.config import parse_config
from edge_agent.model.bundle import load_bundle
from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key
from edge_agent.pipeline.pipeline import Pipeline
from edge_agent.pipeline.shadow import ShadowGuard
from edge_agent.reading import Reading
from edge_agent.store.sqlite import Store
from edgetwin_contracts import signing
from model_export.dataset import WindowSpec

PERIOD_S = 60.0
RATE_HZ = 10
PERIODS = 300
T0 = 1_767_225_600.0  # a minute boundary


def signal(n: int, seed: int = 5) -> np.ndarray:
    """A bearing-like temperature at 10 Hz: two slow oscillations, a wandering level
    and sensor noise (which the minute means average away)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE_HZ
    level = np.cumsum(rng.normal(0.0, 0.002, n))
    slow = 4.0 * np.sin(2 * math.pi * t / 2700.0) + 1.5 * np.sin(2 * math.pi * t / 1130.0 + 1.0)
    return 60.0 + slow + level + rng.normal(0.0, 0.6, n)


@pytest.fixture
def bundle_60s(make_bundle: Any, release_key: Any, tmp_path: Path) -> tuple[Path, Path]:
    def edit(m: dict[str, Any]) -> None:
        m["model"]["version"] = "2.0.0"
        m["input"]["sample_period_s"] = PERIOD_S

    key = tmp_path / "release.pub"
    key.write_bytes(signing.public_key_pem(release_key.public_key()))
    return make_bundle(edit_manifest=edit), key


def test_live_guard_mae_agrees_with_the_cloud_held_out_mae(
    tmp_path: Path, bundle_60s: tuple[Path, Path]
) -> None:
    folder, key = bundle_60s
    new = load_bundle(folder, signing.load_public_key(key))
    running = load_bundle(DEFAULT_BUNDLE, default_public_key())
    spec = WindowSpec(
        window_length=new.manifest.input.window_length,
        horizons=tuple(new.forecaster.horizons),
        holdout_fraction=0.5,
    )
    cut = spec.split_point(PERIODS)  # the cloud's first held-out slot
    values = signal(PERIODS * 600 + 1)
    ts = T0 + np.arange(values.size) / RATE_HZ

    config = parse_config(f"[store]\nsummary_interval_s = {PERIOD_S}\n")
    engine = AlarmEngine([], running.forecaster.horizons, sink=lambda _e: None, actions={})
    with Store(tmp_path / "device.db", config.store) as store:
        pipeline = Pipeline(config, running.forecaster, engine, store)
        guard = ShadowGuard(
            running.forecaster,
            10**9,  # read at the end, never decided
            lambda _g: None,
            horizons=new.forecaster.horizons,
            period_s=PERIOD_S,
        )
        swap_at = T0 + cut * PERIOD_S
        for t, v in zip(ts.tolist(), values.tolist(), strict=True):
            if guard is not None and t >= swap_at:
                # The OTA swap at the first held-out minute (the model runs at 60 s now).
                pipeline.swap(new.forecaster, guard, PERIOD_S)
                live, guard = guard, None
            pipeline.process(Reading(t, "temp", v))
        store.flush()
        summaries = store.summaries("temp", limit=PERIODS + 10)
    assert len(summaries) == PERIODS

    # The cloud's side: the synced summaries on its grid, held-out windows, int8 MAE.
    series = _grid("temp", [(s.start, s.count, s.mean) for s in summaries], PERIOD_S)
    windows = device_windows(
        DeviceSeries("pump", PERIOD_S, (series,)), spec, 1, new.manifest.input.normalization
    )
    assert isinstance(windows, DeviceWindows), windows
    held = windows.held_out
    forecasts = int8_forecasts(
        (folder / "model.tflite").read_bytes(),
        held,
        spec.window_length,
        spec.horizons,
        new.manifest.input.normalization,
    )
    cloud = channel_scores(forecasts, held, windows.held_out_channel, windows.channels)

    device = live.mae_by_horizon_new
    assert len(held) >= 100 and live.samples >= 0.9 * len(held)
    print(f"\nhorizon  device live guard MAE  cloud held-out MAE  ({live.samples} / {len(held)})")
    for h, d, c in zip(spec.horizons, device, cloud.mae_by_horizon, strict=True):
        print(f"h{h:<3d} ({h * PERIOD_S / 60:g} min)  {d:10.4f}  {c:10.4f}  {d / c - 1:+.1%}")
    for h, d, c in zip(spec.horizons, device, cloud.mae_by_horizon, strict=True):
        assert abs(d / c - 1.0) <= 0.20, (h, d, c)

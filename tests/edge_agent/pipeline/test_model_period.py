"""A bundle's input.sample_period_s is what the device feeds it: on a 10 Hz serial
sensor (a real pty through real pyserial) a model with a 60 s period is fed the 60 s
means of the readings, exactly the means of the store's 60 s summaries (what the cloud
trains on), while value rules still see every raw reading and the forecast rule and
/status state horizons in time."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.model.bundle import load_bundle
from edge_agent.pipeline.aggregate import PeriodMean, feed_refusal
from edge_agent.sources.base import SourceState
from edge_agent.store.summary import SummaryAccumulator
from edgetwin_common.testing import wait_until
from edgetwin_contracts import signing
from tests.edge_agent.agent_harness import config_for, running_agent

T0 = 1_700_000_040.0
"""A UNIX time on a minute boundary: period k is [T0 + 60 k, T0 + 60 (k + 1))."""


def next_minutes(ahead: int = 2) -> float:
    """A minute boundary ``ahead`` minutes from now: data stamped from there on is in the
    future, so the store never closes one of its minutes early on the wall clock (the
    way a real 10 Hz sensor's minutes close: when the next minute's first reading comes)
    and each summary is one accumulator's, unmerged."""
    return (math.floor(time.time() / 60.0) + ahead) * 60.0


RATE_HZ = 10
PERIOD_S = 60.0
PERIODS = 40
SPIKE_AT = 36 * 600 + 7
"""One raw reading (in period 36) far above its neighbours: a value rule sees it, the
period's mean barely moves."""


def test_period_means_are_the_summary_means_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    ts = T0 + np.cumsum(rng.uniform(0.01, 0.2, 20_000))
    ts = np.concatenate([ts[:9000], ts[9000:] + 300.0])  # a gap of five periods
    values = 50.0 + rng.normal(0.0, 3.0, ts.size).cumsum() * 0.01
    means = PeriodMean(PERIOD_S)
    summaries = SummaryAccumulator("x", PERIOD_S)
    got: list[tuple[float, float, int, bool]] = []
    expected: list[tuple[float, float, int]] = []
    for t, v in zip(ts.tolist(), values.tolist(), strict=True):
        if means.push(t, v):
            got.append((means.out_ts, means.out_value, means.out_count, means.is_gap))
        closed = summaries.add(t, v, None, None)
        if closed is not None:
            expected.append((closed.start, closed.mean, closed.count))
    assert [g[:3] for g in got] == expected  # exact: the same operations in the same order
    gaps = [i for i, g in enumerate(got) if g[3]]
    assert len(gaps) == 2 and gaps[0] == 0
    assert got[gaps[1]][0] - got[gaps[1] - 1][0] > PERIOD_S


def test_feed_refusal_names_the_channels_too_slow_for_the_period() -> None:
    assert feed_refusal(None, {"a": 600.0}) is None
    assert feed_refusal(60.0, {"a": 0.1, "b": 60.0, "c": None}) is None
    reason = feed_refusal(60.0, {"a": 0.1, "b": 120.0})
    assert reason is not None and "b every 120 s" in reason and "a every" not in reason


def raw_series(t0: float) -> tuple[list[float], list[str]]:
    """10 Hz readings over PERIODS minutes plus one into the next minute, as the lines
    the device prints; the values are what the agent parses from the text."""
    rng = np.random.default_rng(11)
    n = PERIODS * 600 + 1
    t = t0 + np.arange(n) / RATE_HZ
    value = 60.0 + 5.0 * np.sin(2 * math.pi * (t - t0) / 1500.0) + rng.normal(0, 0.8, n)
    value[SPIKE_AT] = 97.0
    texts = [f"{v:.3f}" for v in value]
    lines = [f"ts={ts:.1f} temp={text}" for ts, text in zip(t.tolist(), texts, strict=True)]
    return [float(x) for x in texts], lines


@pytest.fixture
def bundle(make_bundle: Any, tmp_path: Path, release_key: Ed25519PrivateKey) -> Iterator[Path]:
    def edit(m: dict[str, Any]) -> None:
        m["model"]["version"] = "2.0.0"
        m["input"]["sample_period_s"] = PERIOD_S

    key = tmp_path / "release.pub"
    key.write_bytes(signing.public_key_pem(release_key.public_key()))
    yield make_bundle(edit_manifest=edit)


def test_a_10_hz_sensor_feeds_a_60_s_model_its_minute_means(tmp_path: Path, bundle: Path) -> None:
    t0 = next_minutes()
    values, lines = raw_series(t0)
    master, slave = os.openpty()
    loaded = config_for(
        tmp_path,
        f"""
[model]
bundle = "{bundle}"
public_key = "{tmp_path / "release.pub"}"

[[sources]]
type = "serial"
name = "pump"
port = "{os.ttyname(slave)}"
format = "kv"
timestamp_field = "ts"
fields = {{ temp = {{ channel = "temp" }} }}

[channels.temp]
unit = "°C"

[store]
summary_interval_s = {PERIOD_S}

[[alarms]]
name = "raw-high"
channel = "temp"
type = "value_above"
set = 90
clear = 80

[[alarms]]
name = "forecast-high"
channel = "temp"
type = "forecast_above"
set = 50
clear = 40

[http]
port = 0
""",
    )
    try:
        with running_agent(loaded) as agent:
            (source,) = agent.sources
            # Lines written before the port is open would be cut: wait for it.
            wait_until(lambda: source.health.state is SourceState.CONNECTED, "port open")
            # The source drops what precedes the first newline (it may join a device
            # mid-line): start with one.
            payload = ("\n" + "\n".join(lines) + "\n").encode()
            for i in range(0, len(payload), 4096):
                os.write(master, payload[i : i + 4096])
            wait_until(
                lambda: (
                    "temp" in agent.pipeline.channels
                    and agent.pipeline.channels["temp"].processed == len(values)
                ),
                "every reading processed",
                timeout_s=120,
            )
            ch = agent.pipeline.channels["temp"]
            status = httpx.get(f"{agent.http_url}/status", timeout=10).json()
            agent.store.flush()
            summaries = agent.store.summaries("temp", limit=PERIODS + 5)
            raised = {e.alarm.rule: e.alarm.message for e in agent.engine.recent(50)}
            window = ch.window.view().copy()
            forecast = ch.forecast.copy()
    finally:
        os.close(master)
        os.close(slave)

    # The hand computation: the mean of each minute's 600 readings.
    by_minute = np.asarray(values[:-1]).reshape(PERIODS, 600)
    hand = by_minute.mean(axis=1)
    assert ch.model_steps == PERIODS and ch.model_period_s == PERIOD_S
    np.testing.assert_allclose(window, hand[-ch.window.length :], rtol=1e-12)
    # ... and the store's summaries of the same minutes, bit for bit.
    assert [s.start for s in summaries] == [t0 + PERIOD_S * k for k in range(PERIODS)]
    assert [s.count for s in summaries] == [600] * PERIODS
    assert window.tolist() == [s.mean for s in summaries][-ch.window.length :]
    # The forecast is the model's on those means.
    model = load_bundle(bundle, signing.load_public_key(tmp_path / "release.pub"))
    np.testing.assert_array_equal(forecast, model.forecaster.forecast(window))
    # Value rules see raw readings: the spike raised; its minute's mean stayed low.
    assert "raw-high" in raised and hand.max() < 80
    # Horizons in time: the alarm message, /status.
    assert raised["forecast-high"].endswith("within 16 min"), raised["forecast-high"]
    (info,) = [c for c in status["channels"] if c["name"] == "temp"]
    assert info["forecast"]["model_period_s"] == PERIOD_S
    assert info["forecast"]["horizon_s"] == [PERIOD_S * h for h in info["forecast"]["horizons"]]
    assert info["processed"] == len(values)

"""POST /v1/devices/{name}/whatif: the device's twin rolled forward from its synced
summaries (the pump simulator's 1-minute means), in process and through uvicorn, on
SQLite and PostgreSQL; bad scenarios and a missing state named."""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import numpy as np

from edge_agent.simulator.pump import SimulatorSettings, generate_series
from tests.cloud_sync.conftest import ADMIN, batch, bearer, post_batch

CHANNELS = ("bearing_temp", "vibration", "current", "ambient")


def _pump_summaries(minutes: int) -> list[dict[str, Any]]:
    frames = generate_series(SimulatorSettings(rate_hz=1.0, seed=8), minutes * 60.0)
    rows = np.array([[*f.reported.as_dict().values(), f.load] for f in frames])
    means = rows.reshape(minutes, 60, 5).mean(axis=1)
    t0 = math.floor(time.time() / 60) * 60 - minutes * 60
    out = []
    for i, row in enumerate(means):
        for name, value in zip((*CHANNELS, "load"), row, strict=True):
            start = t0 + 60 * i
            out.append(
                {"channel": name, "start": start, "end": start + 60, "interval_s": 60.0,
                 "count": 60, "min": value, "max": value, "mean": float(value), "std": 0.0,
                 "last": float(value), "last_ts": start + 59}
            )  # fmt: skip
    return out


def test_a_devices_what_if_from_its_synced_state(api: httpx.Client, tokens: dict[str, str]) -> None:
    body = batch(1, alarms=[], summaries=_pump_summaries(20))
    assert post_batch(api, tokens["pump-1"], body).status_code == 200
    scenario = {
        "controls": {"load": [{"value": 0.9, "minutes": 30}, {"value": 0.5, "minutes": 30}]},
        "limits": [{"rule": "current-high", "channel": "current", "level": 19.0}],
    }
    response = api.post("/v1/devices/pump-1/whatif", json=scenario, headers=ADMIN)
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["device"] == "pump-1" and "shipped default twin" in got["twin_source"]
    answer = got["answer"]
    assert answer["steps"] == 60
    current = next(c for c in answer["channels"] if c["channel"] == "current")["values"]
    assert 18.5 < current[10] < 20.5 and 13.5 < current[50] < 15.5  # 7.5 + 13.5 * load
    crossing = answer["crossing"]
    first = next((i + 1 for i, v in enumerate(current) if v >= 19.0), None)
    assert (crossing or {}).get("step") == first
    own = api.post("/v1/devices/pump-1/whatif", json=scenario, headers=bearer(tokens["pump-1"]))
    other = api.post("/v1/devices/pump-2/whatif", json=scenario, headers=bearer(tokens["pump-1"]))
    assert own.status_code == 200 and other.status_code == 403


def test_bad_input_is_named(api: httpx.Client, tokens: dict[str, str]) -> None:
    ok = {"controls": {"load": [{"value": 0.9, "minutes": 10}]}}
    missing = api.post("/v1/devices/pump-2/whatif", json=ok, headers=ADMIN)
    assert missing.status_code == 409 and "bearing_temp" in str(missing.json())
    assert (
        post_batch(
            api, tokens["pump-1"], batch(1, alarms=[], summaries=_pump_summaries(20))
        ).status_code
        == 200
    )
    for scenario, loc in [
        ({"controls": {"speed": [{"value": 1, "minutes": 5}]}}, ["body", "controls", "speed"]),
        (
            {"controls": {"load": [{"value": 1.5, "minutes": 5}]}},
            ["body", "controls", "load", "0", "value"],
        ),
        ({"controls": {"load": [{"value": 0.5, "minutes": 90}]}}, ["body", "controls"]),
    ]:
        response = api.post("/v1/devices/pump-1/whatif", json=scenario, headers=ADMIN)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == loc
    assert api.post("/v1/devices/nobody/whatif", json=ok, headers=ADMIN).status_code == 404

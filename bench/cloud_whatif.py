"""Cost of the cloud's what-if when it answers with the twin a device runs from a twin
release (cloud_sync/whatif.py): the first call reads the bundle from the store, verifies
it with the release key and loads it (golden vectors included); later calls reuse it.

A fresh SQLite database and bundle store; one device syncing 20 minutes of the pump
simulator's 1-minute means; the shipped default twin published as a twin release
(re-signed with a key made for the run) and reported in service by the device.
Prints the first call and the p50 / p99 of the later ones (a 60-minute scenario at a
1-minute period), with the shipped default twin for comparison.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, select

from cloud_sync.db.models import Device
from cloud_sync.db.session import make_engine, upgrade
from cloud_sync.ingest import store_batch
from cloud_sync.registry import add_device
from cloud_sync.releases.publish import publish_release
from cloud_sync.releases.store import BundleStore
from cloud_sync.whatif import CloudScenario, TwinCache, cloud_what_if
from edge_agent.simulator.pump import SimulatorSettings, generate_series
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE
from edgetwin_contracts.batch import Batch
from edgetwin_contracts.signing import generate_private_key, save_keypair

CHANNELS = ("bearing_temp", "vibration", "current", "ambient", "load")
MINUTES = 20


def _batch(twin_sha: str) -> Batch:
    frames = generate_series(SimulatorSettings(rate_hz=1.0, seed=8), MINUTES * 60.0)
    rows = np.array([[*f.reported.as_dict().values(), f.load] for f in frames])
    means = rows.reshape(MINUTES, 60, len(CHANNELS)).mean(axis=1)
    t0 = math.floor(time.time() / 60) * 60 - MINUTES * 60
    summaries = [
        {"channel": name, "start": t0 + 60 * i, "end": t0 + 60 * i + 60, "interval_s": 60.0,
         "count": 60, "min": float(v), "max": float(v), "mean": float(v), "std": 0.0,
         "last": float(v), "last_ts": t0 + 60 * i + 59}
        for i, row in enumerate(means)
        for name, v in zip(CHANNELS, row, strict=True)
    ]  # fmt: skip
    reported = {
        "version": 1,
        "agent_version": "bench",
        "model": {"name": "generic", "version": "1.0.0", "sha256": "ab" * 32},
        "config_hash": "bench",
        "twin": {"name": "edgetwin-pump-twin", "version": "1.1.0", "sha256": twin_sha},
        "twin_update": {"state": "installed", "version": "1.1.0"},
    }
    return Batch.model_validate(
        {"sequence": 1, "created_at": time.time(), "summaries": summaries, "reported": reported}
    )


def _time(
    cache: TwinCache, engine: Engine, scenario: CloudScenario, runs: int
) -> tuple[str, float, float, float]:
    """(twin_source, first call ms, p50 ms, p99 ms of the later calls)."""
    start = time.perf_counter_ns()
    first = cloud_what_if(engine, "pump-1", scenario, cache)
    first_ms = (time.perf_counter_ns() - start) / 1e6
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        cloud_what_if(engine, "pump-1", scenario, cache)
        times.append(time.perf_counter_ns() - start)
    p50, p99 = np.percentile(np.array(times), [50, 99]) / 1e6
    return first.twin_source, first_ms, float(p50), float(p99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cloud-whatif-") as tmp:
        root = Path(tmp)
        engine = make_engine(f"sqlite:///{root / 'cloud.db'}")
        upgrade(engine)
        add_device(engine, "pump-1")
        key = generate_private_key()
        save_keypair(key, root / "keys", "release")
        store = BundleStore(root / "bundles", key.public_key())
        publish_release(
            engine, store, DEFAULT_TWIN_BUNDLE, version="1.1.0", device="pump-1", private_key=key
        )
        model_sha = hashlib.sha256((DEFAULT_TWIN_BUNDLE / "model.tflite").read_bytes()).hexdigest()
        with engine.connect() as conn:
            device_id = conn.execute(select(Device.id).where(Device.name == "pump-1")).scalar_one()
        store_batch(engine, device_id, _batch(model_sha), "bench", time.time())
        scenario = CloudScenario.model_validate(
            {"controls": {"load": [{"value": 0.9, "minutes": 30}, {"value": 0.5, "minutes": 30}]}}
        )
        released = TwinCache(root / "reports", root / "keys" / "release.pub", store)
        shipped = TwinCache(root / "reports", None, None)
        print(f"cloud what-if, 60-minute scenario at a 1-minute period, {args.runs} runs")
        for label, cache in (("released twin", released), ("shipped default", shipped)):
            source, first_ms, p50, p99 = _time(cache, engine, scenario, args.runs)
            print(
                f"  {label:16s} first call {first_ms:7.1f} ms   then p50 {p50:6.2f} ms  "
                f"p99 {p99:6.2f} ms   ({source})"
            )
        engine.dispose()


if __name__ == "__main__":
    main()

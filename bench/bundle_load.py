"""Bundle load-and-verify time: signature + schema + sha256 (no interpreter), then the
full load (interpreter, tensor checks, golden vectors). Median and p95 over N loads."""

from __future__ import annotations

import argparse
import time

import numpy as np

from edge_agent.model.bundle import load_bundle
from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key
from edgetwin_contracts.bundle import read_verified


def timed_ms(fn: object, n: int) -> tuple[float, float]:
    times = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times[i] = (time.perf_counter() - t0) * 1000
    p50, p95 = np.percentile(times, [50, 95])
    return float(p50), float(p95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args()
    key = default_public_key()
    size = (DEFAULT_BUNDLE / "model.tflite").stat().st_size
    verify = timed_ms(lambda: read_verified(DEFAULT_BUNDLE, key), args.n)
    full = timed_ms(lambda: load_bundle(DEFAULT_BUNDLE, key), args.n)
    print(f"bundle {DEFAULT_BUNDLE.name}: model.tflite {size} bytes, {args.n} loads")
    print(f"{'step':52s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for label, (p50, p95) in (
        ("verify: signature + manifest schema + size + sha256", verify),
        ("full load: + interpreter + tensors + golden vectors", full),
    ):
        print(f"{label:52s} {p50:8.3f} {p95:8.3f}")


if __name__ == "__main__":
    main()

"""The NAB detector's cost per sample and its state per channel.

    python bench/nab_cost.py [--score '{"method": "ensemble"}']

Over NAB's machine_temperature series (22,695 readings, 5-minute period), one core: the
int8 forecast of the shipped default model on LiteRT (window in, forecasts out) and the
detector's score, timed apart as the channel pipeline runs them (the score gets the
reading's time, its value and the forecast made for it). Targets (issue 14): forecast +
score <= 20 us per sample at the median; <= 64 KB of detector state per channel (the
preallocated tables, slots and rings the detector reports as ``state_bytes``; the same
after the series as before it: nothing grows).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from _common import percentiles_us, time_detector
from nab_grid import NAB_SCORE, build

from edge_agent.config import parse_config
from edge_agent.model.selection import load_model

STATE_TARGET = 64 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--score", default=json.dumps(NAB_SCORE), help="a [score] table, JSON")
    args = parser.parse_args()
    table = json.loads(args.score)
    forecaster = load_model(parse_config("").model).forecaster
    detector = build(table)
    state = getattr(detector, "state_bytes", None)
    forecast_ns, score_ns = time_detector(forecaster, detector)
    f50, f99 = percentiles_us(forecast_ns)
    s50, s99 = percentiles_us(score_ns)
    total = (forecast_ns + score_ns) / 1000.0
    n = len(total) + 100
    print(f"[score] {json.dumps(table)}")
    print(
        f"{n - 100} samples of NAB machine_temperature, one core: forecast p50 {f50:.2f} us "
        f"(p99 {f99:.2f}), score p50 {s50:.2f} us (p99 {s99:.2f}); forecast + score "
        f"p50 {np.median(total):.2f} us, mean {total.mean():.2f} us (target <= 20 us p50)"
    )
    if state is not None:
        after = getattr(detector, "state_bytes", None)
        print(
            f"detector state per channel: {state:,} bytes before the series, {after:,} after "
            f"(target <= {STATE_TARGET:,})"
        )


if __name__ == "__main__":
    sys.exit(main())

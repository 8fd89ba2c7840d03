"""`edge-agent replay` for the NAB bench: result files, no look-ahead through the whole
pipeline (real model on LiteRT), and a model release taken mid-replay."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.config import LoadedConfig, parse_config
from edge_agent.pipeline.backtest import NAB_HEADER, ModelUpdate, run_backtest
from edgetwin_contracts.signing import public_key_pem
from tests.conftest import BundleFactory
from tests.edge_agent.integration.helpers import T0

ROWS = 700
CUT = 450


def config(tmp_path: Path) -> LoadedConfig:
    text = f"""
[agent]
data_dir = "{tmp_path / "data"}"

[channel_defaults.score]
method = "likelihood"
likelihood_warmup = 100
hold_samples = 20

[[alarms]]
name = "anomaly"
channel = "*"
type = "score_above"
set = 2.5
clear = 1.0
"""
    return LoadedConfig(tmp_path / "agent.toml", parse_config(text))


def series(path: Path, values: np.ndarray) -> Path:
    lines = ["timestamp,value"]
    lines += [f"{T0 + 300 * i:.0f},{v:.4f}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def nab_scores(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        assert tuple(next(reader)) == NAB_HEADER
        return [row[2] for row in reader]


def signal(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    i = np.arange(ROWS)
    return 20 + 3 * np.sin(i / 15) + rng.normal(0, 0.2, ROWS)


def test_changing_future_readings_does_not_change_earlier_scores(tmp_path: Path) -> None:
    loaded = config(tmp_path)
    values = signal(1)
    first = tmp_path / "a.nab.csv"
    run_backtest(loaded, series(tmp_path / "a.csv", values), None, nab_out=first)
    changed = values.copy()
    changed[CUT:] = 80 + np.random.default_rng(2).normal(0, 10, ROWS - CUT)
    second = tmp_path / "b.nab.csv"
    run_backtest(loaded, series(tmp_path / "b.csv", changed), None, nab_out=second)

    before, after = nab_scores(first), nab_scores(second)
    assert len(before) == len(after) == ROWS
    assert before[:CUT] == after[:CUT]
    assert before[CUT:] != after[CUT:]
    assert max(float(s) for s in after[CUT:]) >= 2.5  # the jump to 80 is detected


def test_nab_result_file_has_one_row_per_reading(tmp_path: Path) -> None:
    data = series(tmp_path / "a.csv", signal(3))
    out = tmp_path / "nab.csv"
    report = run_backtest(config(tmp_path), data, None, nab_out=out)
    with data.open() as a, out.open() as b:
        source, result = list(csv.reader(a))[1:], list(csv.reader(b))[1:]
    assert len(result) == len(source) == report.readings
    assert [float(r[1]) for r in result] == [float(r[1]) for r in source]
    scores = [float(r[2]) for r in result]
    assert all(s >= 0.0 and math.isfinite(s) for s in scores)
    assert scores[:48] == [0.0] * 48  # window fill + residual warm-up: nothing scored


def test_nab_result_needs_one_value_column(tmp_path: Path) -> None:
    data = tmp_path / "two.csv"
    data.write_text("timestamp,a,b\n" + "".join(f"{T0 + i},1,2\n" for i in range(10)))
    with pytest.raises(ValueError, match="one value column"):
        run_backtest(config(tmp_path), data, None, nab_out=tmp_path / "nab.csv")


def test_model_update_is_taken_at_its_time_and_kept(
    tmp_path: Path, make_bundle: BundleFactory, release_key: Ed25519PrivateKey
) -> None:
    bundle = make_bundle()
    key = tmp_path / "release.pub"
    key.write_bytes(public_key_pem(release_key.public_key()))
    data = series(tmp_path / "a.csv", signal(4))
    update = ModelUpdate(T0 + 300 * CUT, bundle, key)
    report = run_backtest(config(tmp_path), data, None, update=update)
    # The same model again: the guard finds it no worse, and keeps it.
    assert report.model_update is not None
    assert report.model_update.startswith("1.0.0 kept after 200 guarded samples")


def test_a_bundle_that_does_not_verify_is_refused_and_the_replay_goes_on(
    tmp_path: Path, make_bundle: BundleFactory, release_key: Ed25519PrivateKey
) -> None:
    bundle = make_bundle(sign=False)
    key = tmp_path / "release.pub"
    key.write_bytes(public_key_pem(release_key.public_key()))
    data = series(tmp_path / "a.csv", signal(5))
    out = tmp_path / "nab.csv"
    update = ModelUpdate(T0 + 300 * CUT, bundle, key)
    report = run_backtest(config(tmp_path), data, None, nab_out=out, update=update)
    assert report.model_update is not None and report.model_update.startswith("refused: ")
    assert len(nab_scores(out)) == ROWS

"""What the arm64 smoke runs on the device, here on the host: the shipped sample replays
with its faults found, and the inference benchmark prints its figures."""

from __future__ import annotations

from pathlib import Path

from tests.edge_agent.integration.helpers import run_cli


def test_replay_the_shipped_sample(tmp_path: Path) -> None:
    done = run_cli(["replay", "--sample", "--out", str(tmp_path / "out.csv")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "replayed 7200 readings (7200 samples through the model)" in done.stdout
    assert "anomaly on vibration" in done.stdout  # the glitch at 10 min
    assert "bearing-hot-predicted on bearing_temp" in done.stdout  # the overheating
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 7201


def test_replay_needs_a_config_and_data_or_the_sample(tmp_path: Path) -> None:
    done = run_cli(["replay"], tmp_path)
    assert done.returncode == 2 and "--sample" in done.stderr


def test_model_bench_prints_latency(tmp_path: Path) -> None:
    done = run_cli(["model", "bench", "--samples", "200"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "200 forecasts, 1 thread: p50" in done.stdout and "forecasts/s" in done.stdout
    assert run_cli(["model", "bench", "--samples", "5"], tmp_path).returncode == 2

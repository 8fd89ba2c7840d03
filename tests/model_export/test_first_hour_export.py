"""What `model-export` tells a new user: horizons in numeric order, and that training
stopped at its epoch cap while still improving."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.model.shipped import DEFAULT_BUNDLE
from model_export.inspection import describe_bundle
from model_export.train import TrainSettings, _still_improving


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_export.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_inspect_lists_horizons_in_numeric_order() -> None:
    text = describe_bundle(Path(DEFAULT_BUNDLE))
    keys = [line.split(":")[0].strip() for line in text.splitlines() if "heldout_mae_h" in line]
    assert keys == [f"heldout_mae_h{h}" for h in (1, 2, 4, 8, 16)]


@pytest.mark.parametrize(
    ("losses", "improving"),
    [
        ([1.0, 0.9, 0.8, 0.7], True),  # at the cap, best at the end
        ([1.0, 0.5, 0.6, 0.7], False),  # at the cap, best long before: converged
        ([1.0, 0.9], False),  # early stopping ended it before the cap
    ],
)
def test_still_improving_at_the_cap(losses: list[float], improving: bool) -> None:
    settings = TrainSettings(epochs=4, patience=2)
    assert _still_improving(losses, settings) is improving


def test_build_says_when_it_stopped_at_the_epoch_cap(tmp_path: Path, tiny_csv: Path) -> None:
    result = run(
        "build", "--data", tiny_csv, "--out", tmp_path / "m.keras", "--epochs", "1",
        "--window", "16", "--horizons", "1,2,4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "stopped at the epoch cap (1) while the loss was still improving" in result.stdout

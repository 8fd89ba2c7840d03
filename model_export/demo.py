"""``model-export demo``: the whole export path on a small synthetic CSV in about a minute.

dataset CSV -> build (a few epochs) -> release key -> convert (int8 + measure + bundle)
-> verify -> verify a tampered copy (rejected) -> inspect. Re-running reuses the key in
``<workdir>/keys`` and replaces the bundles.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.model.bundle import load_bundle
from edgetwin_contracts.errors import BundleRejected
from edgetwin_contracts.manifest import MODEL_FILE
from model_export.dataset import WindowSpec
from model_export.inspection import describe_bundle
from model_export.pipeline import Say, release_key
from model_export.synthetic import iter_corpus
from model_export.train import TrainSettings
from model_export.workflows import build_from_csv, convert_to_bundle

DEMO_CHANNELS = ("bearing_temp_c", "motor_current_a")
DEMO_ROWS = 1500
DEMO_PERIOD_S = 60


def write_demo_csv(path: Path, seed: int = 11) -> Path:
    """A two-channel dataset CSV (ISO timestamps, one row a minute) from the synthetic
    generator; returns ``path``."""
    series = list(iter_corpus(seed, len(DEMO_CHANNELS), DEMO_ROWS))
    start = datetime(2026, 1, 5, tzinfo=UTC)
    lines = ["timestamp," + ",".join(DEMO_CHANNELS)]
    for i in range(DEMO_ROWS):
        stamp = (start + timedelta(seconds=i * DEMO_PERIOD_S)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(stamp + "," + ",".join(f"{s[i]:.6g}" for s in series))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_demo(workdir: Path, *, say: Say = print) -> int:
    """Run the tour in ``workdir``; returns 0, or 1 when a check did not behave.

    Raises the export errors of the steps it runs (never expected on its own data).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    say("step 1/6: write a dataset CSV")
    data = write_demo_csv(workdir / "dataset.csv")
    say(f"{data}: {DEMO_ROWS} rows, channels {', '.join(DEMO_CHANNELS)}, every {DEMO_PERIOD_S} s")

    say("step 2/6: build a small forecaster")
    model_path = workdir / "forecaster.keras"
    build_from_csv(
        data,
        model_path,
        WindowSpec(),
        TrainSettings(epochs=6, patience=2, batch_size=128),
        say=say,
    )

    say("step 3/6: release key")
    key_dir = workdir / "keys"
    key = release_key(key_dir, say)

    say("step 4/6: convert to int8, measure, write the signed bundle")
    bundle = workdir / "bundle"
    result = convert_to_bundle(
        model_path=model_path,
        data_path=data,
        dest=bundle,
        key_path=key_dir / "release.key",
        name="demo-forecaster",
        version="0.1.0",
        description="model-export demo",
        max_int8_increase=0.03,
        representative_count=500,
        seed=7,
        force=True,
        say=say,
    )

    say("step 5/6: verify the bundle, then a tampered copy")
    loaded = load_bundle(bundle, key.public_key())
    say(f"{bundle}: OK ({len(loaded.manifest.golden.vectors)} golden vectors reproduce)")
    tampered = workdir / "bundle-tampered"
    shutil.rmtree(tampered, ignore_errors=True)
    shutil.copytree(bundle, tampered)
    model_file = tampered / MODEL_FILE
    blob = bytearray(model_file.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    model_file.write_bytes(bytes(blob))
    try:
        load_bundle(tampered, key.public_key())
    except BundleRejected as exc:
        say(f"tampered copy rejected as expected: {exc}")
    else:
        say(f"ERROR: the tampered copy {tampered} was accepted")
        return 1

    say("step 6/6: inspect")
    print(describe_bundle(bundle), end="")
    m = result.evaluation.metrics
    naive_by_h = result.evaluation.naive_mae_by_horizon
    naive = sum(naive_by_h) / len(naive_by_h)
    say(
        f"done: held-out MAE float32 {m.float32.mae:.4f}, int8 {m.int8.mae:.4f} "
        f"({m.int8_mae_increase:+.2%}), naive last value {naive:.4f} window-std units; "
        f"model.tflite {result.model_bytes} bytes"
    )
    say(f"try: model-export verify {bundle} --public-key {key_dir / 'release.pub'}")
    return 0

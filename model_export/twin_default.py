"""The default twin shipped in ``edge_agent/twin/shipped/default``: trained on the pump
simulator's physics (``model_export.twin_corpus``), so a device running the example
pump answers what-if scenarios with no training of its own.

Rebuilt deterministically (same corpus seed, same training seed) by::

    python -m model_export.twin_default --key-dir out/keys

which signs with ``out/keys/twin-release.key`` (created when absent) and writes its
public key next to the bundle. See docs/twin.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from edgetwin_contracts.signing import public_key_pem
from model_export.bundle import Release
from model_export.errors import ModelInvalid
from model_export.pipeline import release_key
from model_export.train import TrainSettings, quiet_tensorflow
from model_export.twin_corpus import CHANNELS, CONTROLS, CorpusSettings, pump_corpus
from model_export.twin_export import TwinRecipe, build_twin
from model_export.twin_rollout import RolloutSettings

SHIPPED = Path(__file__).resolve().parent.parent / "edge_agent" / "twin" / "shipped"
KERAS_TWIN_REFERENCE = Path(__file__).resolve().parent / "models" / "default_twin.keras"
"""The float32 Keras model the shipped twin was converted from: the start point of the
per-device fine-tune in the cloud (cloud_sync/training/twin.py)."""
DEFAULT_TWIN_NAME = "edgetwin-pump-twin"


def load_twin_reference() -> Any:
    """The default twin's float32 Keras model (a fresh copy, to fine-tune).

    Raises ModelInvalid when the file is missing or unreadable."""
    quiet_tensorflow()
    import keras

    try:
        return keras.models.load_model(KERAS_TWIN_REFERENCE)
    except Exception as exc:  # keras raises ValueError, OSError, zipfile errors...
        raise ModelInvalid(f"{KERAS_TWIN_REFERENCE}: cannot be loaded ({exc})") from None


def build_default_twin(out: Path, key_dir: Path, public_key_out: Path) -> None:
    """Generate the corpus, train, convert and write the signed default twin."""
    corpus = CorpusSettings(series=480)
    series = pump_corpus(corpus)
    recipe = TwinRecipe(
        channels=CHANNELS,
        controls=CONTROLS,
        period_s=corpus.period_s,
        train=TrainSettings(
            hidden=(64, 64), epochs=80, batch_size=512, patience=6, loss="mse", verbose=0
        ),
        rollout=RolloutSettings(),
    )
    key = release_key(key_dir, stem="twin-release")
    twin, keras_model = build_twin(
        series,
        recipe,
        Release(
            name=DEFAULT_TWIN_NAME,
            version="1.0.0",
            description=(
                "Cross-channel twin of the simulated centrifugal pump at a 1-minute period: "
                "bearing_temp, vibration, current and ambient one period ahead from their "
                "last 16 periods and the planned load. See docs/twin.md."
            ),
        ),
        key,
        out,
        dataset=f"pump-physics seed={corpus.seed} series={corpus.series} periods={corpus.periods}",
        force=True,
    )
    KERAS_TWIN_REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    keras_model.save(KERAS_TWIN_REFERENCE)
    tmp = public_key_out.with_name(public_key_out.name + ".tmp")
    tmp.write_bytes(public_key_pem(key.public_key()))
    shutil.move(tmp, public_key_out)
    metrics = twin.manifest.metrics
    print(
        f"twin written to {out}: one-step MAE float32 {metrics.float32.mae:.4f}, "
        f"int8 {metrics.int8.mae:.4f} (step_scale units)"
    )
    for name, std in twin.spec.residual_std.items():
        print(f"  {name}: residual std at 10/30/60 steps {std[9]:.3f} {std[29]:.3f} {std[59]:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_export.twin_default")
    parser.add_argument("--out", type=Path, default=SHIPPED / "default")
    parser.add_argument("--key-dir", type=Path, default=Path("out/keys"))
    parser.add_argument("--public-key-out", type=Path, default=SHIPPED / "default_twin_release.pub")
    args = parser.parse_args(argv)
    build_default_twin(args.out, args.key_dir, args.public_key_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

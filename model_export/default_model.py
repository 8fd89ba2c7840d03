"""The generic default forecaster shipped in ``edge_agent/model/shipped/default``.

Rebuilt by ``make default-model`` (``model-export default-model --out
edge_agent/model/shipped/default --key-dir out/keys``): synthetic corpus -> windows -> train
-> int8 -> signed bundle, plus the public key next to it. See docs/default-model.md.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgetwin_contracts.manifest import Normalization, TrainingSummary
from edgetwin_contracts.signing import public_key_pem
from model_export.bundle import Release
from model_export.dataset import FORECASTABLE_Z, WindowSet, WindowSpec, split_windows
from model_export.pipeline import ExportResult, Say, export_bundle, release_key
from model_export.synthetic import iter_corpus
from model_export.train import TrainSettings, settings_summary, train

DEFAULT_MODEL_NAME = "edgetwin-generic-forecaster"
KERAS_REFERENCE = Path(__file__).resolve().parent / "models" / "default_forecaster.keras"
"""The float32 Keras model the shipped bundle was converted from: the reference for
bench/inference.py and bench/quantization.py, and the start point for fleet training."""
CORPUS_NAME = "edgetwin-synthetic/v1"


@dataclass(frozen=True, slots=True)
class DefaultModelSettings:
    """Corpus size and recipe of the default model (the values documented and shipped).

    Attributes:
        seed: corpus and training seed.
        series: synthetic series in the corpus.
        length: samples per series.
        spec: windows (32 in, horizons 1..16); stride thins the overlapping windows.
        train: the Keras recipe.
        version: release version written to the manifest.
    """

    seed: int = 7
    series: int = 3000
    length: int = 1024
    spec: WindowSpec = field(default_factory=lambda: WindowSpec(stride=3))
    train: TrainSettings = field(
        default_factory=lambda: TrainSettings(epochs=30, batch_size=512, patience=3)
    )
    version: str = "1.0.0"


def build_default_model(
    out: Path,
    key_dir: Path,
    public_key_out: Path,
    settings: DefaultModelSettings | None = None,
    *,
    keras_out: Path | None = KERAS_REFERENCE,
    say: Say = print,
    progress: bool = True,
) -> ExportResult:
    """Generate the corpus, train, convert, and write the signed bundle to ``out``
    (replacing it), the release public key to ``public_key_out`` and the float Keras
    model to ``keras_out``.

    Raises the pipeline's errors: ConversionRefused, ExportError, KeyInvalid.
    """
    started = time.monotonic()
    s = settings or DefaultModelSettings()
    norm = Normalization()
    train_windows, held_out = _corpus_windows(s, norm, say, progress)

    z_in, z_target, _ = train_windows.normalized(norm)
    say(f"training (up to {s.train.epochs} epochs, early stopping on the last 10%)")
    result = train(z_in, z_target, s.train)
    say(f"trained {result.epochs_run} epochs, validation loss {result.val_loss}")

    key = release_key(key_dir, say)
    exported = export_bundle(
        model=result.model,
        train_windows=train_windows,
        held_out=held_out,
        spec=s.spec,
        norm=norm,
        release=Release(
            name=DEFAULT_MODEL_NAME,
            version=s.version,
            description=(
                "Generic per-channel forecaster pretrained on a synthetic corpus of "
                "sensor-like series; each window is z-scored on the device, so it works "
                "zero-shot at any scale. See docs/default-model.md."
            ),
        ),
        training=TrainingSummary(
            dataset=f"{CORPUS_NAME} seed={s.seed} series={s.series} length={s.length}",
            series=s.series,
            windows=len(train_windows),
            epochs=result.epochs_run,
            notes={
                **settings_summary(s.train),
                "stride": s.spec.stride,
                "final_train_loss": round(result.train_loss, 6),
                **({"best_val_loss": round(result.val_loss, 6)} if result.val_loss else {}),
            },
        ),
        private_key=key,
        dest=out,
        force=True,
        holdout=(
            f"last {s.spec.holdout_fraction:.0%} of every synthetic series; windows with a "
            f"target beyond {FORECASTABLE_Z:g} window-std left out"
        ),
        seed=s.seed,
        say=say,
        progress=progress,
    )
    _write_public_key(key, public_key_out, say)
    if keras_out is not None:
        keras_out.parent.mkdir(parents=True, exist_ok=True)
        result.model.save(keras_out)
        say(f"float32 Keras reference written to {keras_out}")
    say(f"default model built in {time.monotonic() - started:.0f} s")
    return exported


def _corpus_windows(
    s: DefaultModelSettings, norm: Normalization, say: Say, progress: bool
) -> tuple[WindowSet, WindowSet]:
    """The synthetic corpus as (training, held-out) windows, the unforecastable ones
    (a target far outside its window's spread) left out."""
    say(f"generating {s.series} synthetic series of {s.length} samples (seed {s.seed})")
    corpus = iter_corpus(s.seed, s.series, s.length)
    if progress:
        from tqdm import tqdm

        corpus = tqdm(
            corpus, total=s.series, desc="corpus", unit="series", leave=False, disable=None
        )
    train_windows, held_out = split_windows(list(corpus), s.spec)
    train_windows, held_out = train_windows.forecastable(norm), held_out.forecastable(norm)
    say(f"{len(train_windows)} training windows, {len(held_out)} held-out windows")
    return train_windows, held_out


def _write_public_key(key: Ed25519PrivateKey, public_key_out: Path, say: Say) -> None:
    public_key_out.parent.mkdir(parents=True, exist_ok=True)
    tmp = public_key_out.with_name(public_key_out.name + ".tmp")
    tmp.write_bytes(public_key_pem(key.public_key()))
    shutil.move(tmp, public_key_out)
    say(f"public key written to {public_key_out}")

"""Training the forecaster (Keras 3 on TensorFlow).

The model maps one z-scored window (window_length values) to z-scored forecasts at
each horizon. It is a small MLP plus a linear skip path::

    z ─┬─ Dense(64, relu) ─ Dense(32, relu) ─ Dense(H) ─┐
       └──────────────────── Dense(H, linear) ───────────┴─ Add ─> forecasts

The linear path starts as "repeat the last reading" (the naive forecast), so the MLP
only has to learn corrections; in int8 it is one more fully-connected op.

TensorFlow is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from model_export.errors import ModelInvalid, TrainingFailed

FloatArray = npt.NDArray[np.float64]
SIDECAR_SUFFIX = ".training.json"


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """Training recipe.

    Attributes:
        hidden: widths of the MLP's hidden layers (relu).
        epochs: upper bound on epochs (early stopping usually ends sooner), >= 1.
        batch_size: windows per gradient step.
        learning_rate: Adam step size.
        patience: epochs without validation improvement before stopping.
        validation_fraction: last share of the training windows used for early stopping,
            in [0, 0.5); 0 disables early stopping.
        loss: "huber" (delta 1, in window-std units) or "mse".
        seed: seeds Python, NumPy and TensorFlow for a repeatable run.
        verbose: Keras verbosity (0 silent, 2 one line per epoch).
    """

    hidden: tuple[int, ...] = (64, 32)
    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 1e-3
    patience: int = 4
    validation_fraction: float = 0.1
    loss: Literal["huber", "mse"] = "huber"
    seed: int = 7
    verbose: int = 2


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A trained model: ``model`` is a ``keras.Model`` (typed Any: TF has no stubs)."""

    model: Any
    epochs_run: int
    train_loss: float
    val_loss: float | None
    still_improving: bool = False
    """Training ran into its epoch cap while the loss (validation loss when there is a
    validation split) was still going down: more epochs would likely help."""


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ start-up chatter unless the user asked for it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_model(window_length: int, n_horizons: int, hidden: tuple[int, ...], seed: int) -> Any:
    """An untrained model: input (None, window_length) float32, output (None, n_horizons)."""
    quiet_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(window_length,), name="window")
    x = inputs
    for i, width in enumerate(hidden):
        x = keras.layers.Dense(width, activation="relu", name=f"hidden_{i}")(x)
    correction = keras.layers.Dense(n_horizons, name="correction")(x)
    skip = keras.layers.Dense(n_horizons, name="linear")(inputs)
    outputs = keras.layers.Add(name="forecast")([skip, correction])
    model = keras.Model(inputs, outputs, name="forecaster")
    kernel = np.zeros((window_length, n_horizons), dtype=np.float32)
    kernel[-1, :] = 1.0
    model.get_layer("linear").set_weights([kernel, np.zeros(n_horizons, dtype=np.float32)])
    # A small start for the correction keeps the initial model at the naive forecast.
    corr = model.get_layer("correction")
    w, b = corr.get_weights()
    corr.set_weights([w * 0.1, b])
    return model


def train(
    z_inputs: FloatArray,
    z_targets: FloatArray,
    settings: TrainSettings,
    *,
    initial_model: Any | None = None,
    sample_weights: FloatArray | None = None,
) -> TrainResult:
    """Fit a model on normalised windows (see ``WindowSet.normalized``).

    Args:
        z_inputs: (N, window_length) z-scored windows, time order within each series.
        z_targets: (N, H) targets in the same window's z units.
        settings: the recipe (``hidden`` is ignored when ``initial_model`` is given).
        initial_model: a ``keras.Model`` to continue training (pretrain -> fine-tune;
            it is trained in place and returned); None: a new model (``build_model``).
        sample_weights: (N,) weight of each window in the loss (and in early stopping's
            validation loss); None: all equal.

    Raises:
        TrainingFailed: no windows, or the loss became NaN/inf.
    """
    if len(z_inputs) == 0:
        raise TrainingFailed("no training windows: the dataset is too short for the window")
    quiet_tensorflow()
    import keras

    if initial_model is None:
        model = build_model(z_inputs.shape[1], z_targets.shape[1], settings.hidden, settings.seed)
    else:
        keras.utils.set_random_seed(settings.seed)
        model = initial_model
    loss: Any = keras.losses.Huber(delta=1.0) if settings.loss == "huber" else "mse"
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss=loss)
    x = z_inputs.astype(np.float32)
    y = z_targets.astype(np.float32)
    weights = None if sample_weights is None else sample_weights.astype(np.float32)
    callbacks: list[Any] = [keras.callbacks.TerminateOnNaN()]
    n_val = int(len(x) * settings.validation_fraction)
    validation: tuple[Any, ...] | None = None
    if n_val > 0:
        # The validation windows are the last ones (the end of the last series), not a
        # random sample, so early stopping judges on windows the model did not train on.
        x, x_val, y, y_val = x[:-n_val], x[-n_val:], y[:-n_val], y[-n_val:]
        validation = (x_val, y_val)
        if weights is not None:
            weights, w_val = weights[:-n_val], weights[-n_val:]
            validation = (x_val, y_val, w_val)
        callbacks.append(
            keras.callbacks.EarlyStopping(
                patience=settings.patience, restore_best_weights=True, min_delta=1e-5
            )
        )
    history = model.fit(
        x,
        y,
        sample_weight=weights,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        validation_data=validation,
        shuffle=True,
        callbacks=callbacks,
        verbose=settings.verbose,
    )
    losses = [float(v) for v in history.history.get("loss", [])]
    if not losses or not all(math.isfinite(v) for v in losses):
        raise TrainingFailed(
            "training loss became NaN or inf; check the dataset for extreme values "
            "or lower --learning-rate"
        )
    val = [float(v) for v in history.history.get("val_loss", [])]
    return TrainResult(
        model,
        len(losses),
        losses[-1],
        min(val) if val else None,
        still_improving=_still_improving(val or losses, settings),
    )


def _still_improving(losses: list[float], settings: TrainSettings) -> bool:
    """At the epoch cap, early stopping had not ended it: the best epoch is within the
    last ``patience`` epochs (early stopping's own test), or, with a single epoch,
    there is nothing to compare and the cap is what stopped it."""
    if len(losses) < settings.epochs:
        return False
    best = min(range(len(losses)), key=losses.__getitem__)
    return best >= len(losses) - max(settings.patience, 1)


def save_model(model: Any, path: Path, sidecar: dict[str, Any]) -> Path:
    """Save the model (``.keras``) and its training sidecar (``<path>.training.json``:
    window spec and training summary that ``convert`` needs). Returns the sidecar path."""
    if path.suffix != ".keras":
        raise ModelInvalid(f"{path}: the model file name must end in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    side = sidecar_path(path)
    side.write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return side


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + SIDECAR_SUFFIX)


def load_model(path: Path) -> tuple[Any, dict[str, Any]]:
    """Load a model saved by ``save_model`` and its sidecar.

    Raises:
        ModelInvalid: either file is missing or unreadable.
    """
    side = sidecar_path(path)
    if not path.is_file():
        raise ModelInvalid(f"{path}: model file not found")
    try:
        sidecar = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelInvalid(
            f"{side}: training sidecar not found; it is written by 'model-export build' "
            "next to the model"
        ) from None
    except json.JSONDecodeError as exc:
        raise ModelInvalid(f"{side}: not JSON ({exc})") from None
    quiet_tensorflow()
    import keras

    try:
        model = keras.models.load_model(path)
    except Exception as exc:  # keras raises ValueError, OSError, zipfile errors...
        raise ModelInvalid(f"{path}: cannot be loaded as a Keras model ({exc})") from None
    return model, sidecar


def settings_summary(settings: TrainSettings) -> dict[str, str | int | float]:
    """The recipe as flat manifest notes."""
    out: dict[str, str | int | float] = {}
    for key, value in asdict(settings).items():
        if key == "verbose":
            continue
        out[key] = "x".join(str(v) for v in value) if isinstance(value, tuple) else value
    return out

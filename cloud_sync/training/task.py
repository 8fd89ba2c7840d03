"""One device's fine-tune, int8 conversion and evaluation: the unit of Dask fan-out.

``fine_tune_device(task)`` is a pure function of its (picklable) task: the fleet model
arrives as weights, the deployed model as its verified ``model.tflite`` bytes, the data
as windows. It touches no database and writes no file, so it runs the same on an
in-process LocalCluster and on a worker of a remote cluster; the client signs and
writes the bundle and the report. The release private key never leaves the client.

Both models are measured on the same held-out windows through the device's own
``Forecaster`` on raw windows, so the comparison is of what the device would run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cloud_sync.training.dataset import DeviceWindows
from edgetwin_contracts.manifest import Normalization
from model_export.convert import (
    DEFAULT_MAX_INT8_INCREASE,
    DEFAULT_REPRESENTATIVE_WINDOWS,
    Evaluation,
    check_int8_bound,
    convert_to_int8,
    evaluate,
    representative_windows,
)
from model_export.dataset import WindowSet, WindowSpec
from model_export.errors import ConversionRefused
from model_export.train import TrainResult, TrainSettings, build_model, train

FloatArray = npt.NDArray[np.float64]
MAX_EVAL_WINDOWS = 20_000
INT8_ABS_FLOOR = 0.01
"""A hundredth of a window-std: below what any alarm rule can notice."""


@dataclass(frozen=True, slots=True)
class DeployedModel:
    """The model a device runs now, as the device runs it.

    Attributes:
        name, version: from its manifest.
        model_bytes: the verified int8 ``model.tflite``.
        window_length, horizons, normalization: from its manifest.
        source: where it was found (the shipped default, a stored release).
        note: a caveat for the report ("" when the device's report matched exactly).
    """

    name: str
    version: str
    model_bytes: bytes
    window_length: int
    horizons: tuple[int, ...]
    normalization: Normalization
    source: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class FineTuneTask:
    """Everything a worker needs; ``fleet_weights`` are ``keras.Model.get_weights()``."""

    device: str
    windows: DeviceWindows
    fleet_weights: list[FloatArray]
    hidden: tuple[int, ...]
    spec: WindowSpec
    settings: TrainSettings
    deployed: DeployedModel
    norm: Normalization
    max_int8_increase: float = DEFAULT_MAX_INT8_INCREASE
    int8_abs_floor: float = INT8_ABS_FLOOR
    """int8 may exceed the float32 MAE by this much (window-std units) whatever the
    relative bound: device series that are flat most of the time have a near-zero
    float32 error, and int8 rounding would refuse every candidate for them."""
    seed: int = 7
    weight_by_window_std: bool = True
    """Weight each training window by its std (the loss then follows the MAE in channel
    units that promotion is decided on)."""
    generic_weights: list[FloatArray] | None = None
    """The shipped generic model's weights: a second starting point, fine-tuned the same
    way; the start whose fine-tune validates better is kept. None: the fleet model only."""


@dataclass(frozen=True, slots=True)
class Scores:
    """Held-out errors in channel units.

    Attributes:
        mae_by_horizon: MAE per horizon over all channels' held-out windows.
        mae_by_channel: all-horizon MAE per channel name.
    """

    mae_by_horizon: list[float]
    mae_by_channel: dict[str, float]

    @property
    def mae_h1(self) -> float:
        return self.mae_by_horizon[0]

    @property
    def mae(self) -> float:
        """All-horizon mean MAE: the metric promotion is decided on."""
        return float(np.mean(self.mae_by_horizon))


@dataclass(frozen=True, slots=True)
class FineTuneResult:
    """What a worker sends back (small: the int8 model is ~10 kB).

    ``refused`` is set (and nothing else can be trusted for promotion) when int8
    conversion lost more accuracy than ``max_int8_increase`` allows.
    """

    device: str
    model_bytes: bytes
    epochs_run: int
    train_loss: float
    val_loss: float | None
    evaluation: Evaluation
    """Float32 vs int8 in window-std units (the manifest's metrics)."""
    candidate_float: Scores
    candidate_int8: Scores
    deployed: Scores | None
    naive: Scores
    one_step: dict[str, FloatArray]
    """'actual', 'deployed', 'candidate': horizon-1 values per held-out window."""
    representative: int
    seconds: float
    refused: str = ""
    start: str = "fleet"
    """Which pretrained model the kept fine-tune started from: fleet or generic."""
    start_val_losses: dict[str, float] = field(default_factory=dict)
    """Early-stopping validation loss of each start's fine-tune."""


def limit_threads() -> None:
    """One TensorFlow thread per Dask worker thread: workers are the parallelism."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already initialized in this process: set by an earlier task


def fine_tune_device(task: FineTuneTask) -> FineTuneResult:
    """Fine-tune the fleet model on one device, convert to int8, and measure candidate
    and deployed model on the device's held-out windows.

    Raises TrainingFailed (NaN loss) or ExportError (conversion failed).
    """
    started = time.monotonic()
    limit_threads()
    w = task.windows
    spec, norm = task.spec, task.norm
    z_in, z_target, std = w.train.normalized(norm)
    # The promotion metric is MAE in channel units, i.e. the z-error times the window's
    # std: weighting each window by its std trains for that, not for the z-error of
    # flat stretches that no alarm ever sees.
    weights = std / np.mean(std) if task.weight_by_window_std else None
    start, result, losses = _best_start(task, z_in, z_target, weights)

    rep = representative_windows(z_in, DEFAULT_REPRESENTATIVE_WINDOWS, task.seed)
    model_bytes = convert_to_int8(result.model, rep)
    measured = w.held_out.subsample(MAX_EVAL_WINDOWS, task.seed)
    refused = ""
    evaluation = evaluate(
        result.model,
        model_bytes,
        measured,
        spec,
        norm,
        holdout=f"last {spec.holdout_fraction:.0%} of each channel's summary series",
    )
    try:
        check_int8_bound(evaluation.metrics, task.max_int8_increase, task.int8_abs_floor)
    except ConversionRefused as exc:
        refused = str(exc)

    held = w.held_out
    names = w.channels
    z_held, _, std = held.normalized(norm)
    mean = held.inputs.mean(axis=1)
    predicted = np.asarray(
        result.model.predict(z_held.astype(np.float32), batch_size=4096, verbose=0),
        dtype=np.float64,
    )
    float_out = predicted * std[:, None] + mean[:, None]
    int8_out = int8_forecasts(model_bytes, held, spec.window_length, spec.horizons, norm)
    naive_out = np.repeat(held.inputs[:, -1:], len(spec.horizons), axis=1)
    deployed_scores: Scores | None = None
    deployed_h1 = np.full(len(held), np.nan)
    d = task.deployed
    if d.window_length == spec.window_length and tuple(d.horizons) == tuple(spec.horizons):
        deployed_out = int8_forecasts(
            d.model_bytes, held, d.window_length, d.horizons, d.normalization
        )
        deployed_scores = channel_scores(deployed_out, held, w.held_out_channel, names)
        deployed_h1 = deployed_out[:, 0]
    return FineTuneResult(
        device=task.device,
        model_bytes=model_bytes,
        epochs_run=result.epochs_run,
        train_loss=result.train_loss,
        val_loss=result.val_loss,
        evaluation=evaluation,
        candidate_float=channel_scores(float_out, held, w.held_out_channel, names),
        candidate_int8=channel_scores(int8_out, held, w.held_out_channel, names),
        deployed=deployed_scores,
        naive=channel_scores(naive_out, held, w.held_out_channel, names),
        one_step={
            "actual": held.targets[:, 0].copy(),
            "deployed": deployed_h1,
            "candidate": int8_out[:, 0].copy(),
        },
        representative=len(rep),
        seconds=time.monotonic() - started,
        refused=refused,
        start=start,
        start_val_losses=losses,
    )


def _best_start(
    task: FineTuneTask,
    z_in: FloatArray,
    z_target: FloatArray,
    weights: FloatArray | None,
) -> tuple[str, TrainResult, dict[str, float]]:
    """Fine-tune from each start (the fleet model, the generic one); the label and the
    result of the one with the lower validation loss, and every start's loss."""
    spec = task.spec
    starts = {"fleet": task.fleet_weights}
    if task.generic_weights is not None:
        starts["generic"] = task.generic_weights
    # The fleet model is pretrained on every device, so it can be a worse start for a
    # device unlike the rest of the fleet (a near-binary key signal among temperatures):
    # each start is fine-tuned and the better one on the device's own validation windows
    # (never the held-out ones the promotion is decided on) is kept.
    results: dict[str, TrainResult] = {}
    for label, start_weights in starts.items():
        model = build_model(spec.window_length, len(spec.horizons), task.hidden, task.seed)
        model.set_weights(start_weights)
        results[label] = train(
            z_in, z_target, task.settings, initial_model=model, sample_weights=weights
        )
    losses = {label: _selection_loss(r) for label, r in results.items()}
    start = min(losses, key=lambda label: losses[label])
    return start, results[start], losses


def _selection_loss(result: TrainResult) -> float:
    return result.val_loss if result.val_loss is not None else result.train_loss


def int8_forecasts(
    model_bytes: bytes,
    windows: WindowSet,
    window_length: int,
    horizons: tuple[int, ...],
    norm: Normalization,
) -> FloatArray:
    """(N, H) forecasts in channel units through the device ``Forecaster``."""
    from edge_agent.model.inference.forecaster import Forecaster

    forecaster = Forecaster(
        model_bytes, window_length=window_length, horizons=horizons, normalization=norm
    )
    out = np.empty((len(windows), len(horizons)))
    for i in range(len(windows)):
        out[i] = forecaster.forecast(windows.inputs[i])
    return out


def channel_scores(
    forecasts: FloatArray,
    windows: WindowSet,
    channel: npt.NDArray[np.int64],
    names: tuple[str, ...],
) -> Scores:
    """MAE in channel units: per horizon over all windows, and all-horizon per channel."""
    err = np.abs(forecasts - windows.targets)
    per_channel: dict[str, float] = {}
    for index, name in enumerate(names):
        rows = channel == index
        if np.any(rows):
            per_channel[name] = float(np.mean(err[rows]))
    return Scores(np.mean(err, axis=0).tolist(), per_channel)

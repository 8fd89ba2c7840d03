"""Full-integer int8 conversion and the float32-vs-int8 accuracy check.

The converted model has int8 input and output tensors (no float ops at the edges), so
the device quantizes the z-scored window itself (``Forecaster``). The int8 model is
judged on held-out windows through ``edge_agent.model.inference.forecaster.Forecaster``, the
device's own code path on raw windows, so what is measured is what ships.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_agent.model.inference.forecaster import Forecaster
from edgetwin_contracts.manifest import ErrorMetrics, Normalization, ValidationMetrics
from model_export.dataset import WindowSet, WindowSpec
from model_export.errors import ConversionRefused, ExportError
from model_export.train import quiet_tensorflow

FloatArray = npt.NDArray[np.float64]

DEFAULT_MAX_INT8_INCREASE = 0.03
DEFAULT_REPRESENTATIVE_WINDOWS = 1000


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Held-out errors in window-std units.

    ``metrics`` goes into the manifest; the per-horizon MAEs and the naive
    (last-value) MAE are kept for reports and manifest notes.
    """

    metrics: ValidationMetrics
    float32_mae_by_horizon: list[float]
    int8_mae_by_horizon: list[float]
    naive_mae_by_horizon: list[float]


def representative_windows(z_inputs: FloatArray, count: int, seed: int) -> FloatArray:
    """``count`` training windows drawn at random (all when there are fewer).

    Drawn across all series so the calibrated int8 ranges cover flat, smooth, noisy and
    spiky windows alike.
    """
    if len(z_inputs) <= count:
        return z_inputs
    rng = np.random.default_rng(seed)
    return z_inputs[rng.choice(len(z_inputs), size=count, replace=False)]


def convert_to_int8(model: Any, representative: FloatArray) -> bytes:
    """Convert a Keras model to a full-integer int8 TFLite flatbuffer.

    Args:
        model: a ``keras.Model`` taking (None, W) float32 z-scores.
        representative: (N, W) z-scored windows used to calibrate every tensor's range.

    Raises:
        ExportError: the converter failed (message carries its reason).
    """
    if len(representative) == 0:
        raise ExportError("int8 conversion needs representative windows; none were given")
    quiet_tensorflow()
    import tensorflow as tf

    samples = representative.astype(np.float32)

    def dataset() -> Iterator[list[npt.NDArray[np.float32]]]:
        for row in samples:
            yield [row[None, :]]

    # from_concrete_functions fails with READ_VARIABLE on Keras 3 models; from_keras_model
    # traces the model itself and works.
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with _captured_output() as log, warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": the converter's own calibration
        # supplies them; the warning is about the legacy path.
        warnings.simplefilter("ignore", UserWarning)
        try:
            flatbuffer: bytes = converter.convert()
        except Exception as exc:  # the converter raises ConverterError, ValueError, ...
            failure = f"TFLite int8 conversion failed: {exc}"
        else:
            failure = ""
    if failure:
        raise ExportError(f"{failure}\nconverter output:\n{log.getvalue()}")
    return flatbuffer


@contextlib.contextmanager
def _captured_output() -> Iterator[io.StringIO]:
    """Hold the converter's chatter (Python prints of traced functions, native logs on
    file descriptors 1 and 2) so progress output stays readable; the text is kept for
    the error message when conversion fails."""
    buffer = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                yield buffer
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            buffer.write(sink.read().decode("utf-8", errors="replace"))


def evaluate(
    model: Any,
    model_bytes: bytes,
    held_out: WindowSet,
    spec: WindowSpec,
    norm: Normalization,
    *,
    holdout: str,
    progress: bool = False,
) -> Evaluation:
    """Float32 (Keras, on z-scored windows) and int8 (device Forecaster, on raw windows)
    errors on the same held-out windows, both in units of each window's std_eff.

    Raises:
        ExportError: there are no held-out windows.
    """
    if len(held_out) == 0:
        raise ExportError("no held-out windows to measure the int8 error on")
    z_in, z_target, std = held_out.normalized(norm)
    predicted = np.asarray(
        model.predict(z_in.astype(np.float32), batch_size=4096, verbose=0), dtype=np.float64
    )
    f32_err = predicted - z_target

    forecaster = Forecaster(
        model_bytes, window_length=spec.window_length, horizons=spec.horizons, normalization=norm
    )
    int8_err = np.empty_like(f32_err)
    rows: Any = range(len(held_out))
    if progress:
        from tqdm import tqdm

        rows = tqdm(rows, desc="int8 held-out", unit="window", leave=False, disable=None)
    for i in rows:
        out = forecaster.forecast(held_out.inputs[i])
        int8_err[i] = (out - held_out.targets[i]) / std[i]
    naive_err = z_in[:, -1:] - z_target

    f32_mae = float(np.mean(np.abs(f32_err)))
    int8_mae = float(np.mean(np.abs(int8_err)))
    metrics = ValidationMetrics(
        holdout=holdout,
        windows=len(held_out),
        float32=ErrorMetrics(mae=f32_mae, rmse=_rmse(f32_err)),
        int8=ErrorMetrics(mae=int8_mae, rmse=_rmse(int8_err)),
        int8_mae_increase=relative_increase(f32_mae, int8_mae),
    )
    return Evaluation(
        metrics=metrics,
        float32_mae_by_horizon=np.mean(np.abs(f32_err), axis=0).tolist(),
        int8_mae_by_horizon=np.mean(np.abs(int8_err), axis=0).tolist(),
        naive_mae_by_horizon=np.mean(np.abs(naive_err), axis=0).tolist(),
    )


def _rmse(err: FloatArray) -> float:
    # root of the mean square per horizon, then averaged over horizons (as the MAE is)
    return float(np.mean(np.sqrt(np.mean(err * err, axis=0))))


def relative_increase(float32_mae: float, int8_mae: float) -> float:
    """(int8 - float32) / float32; 0 when both are 0, inf when only float32 is 0."""
    if float32_mae > 0:
        return (int8_mae - float32_mae) / float32_mae
    return 0.0 if int8_mae == 0 else float("inf")


def check_int8_bound(
    metrics: ValidationMetrics, max_increase: float, abs_floor: float = 0.0
) -> None:
    """Raise ConversionRefused when ``metrics.int8_mae_increase`` exceeds ``max_increase``
    (a fraction: 0.03 allows int8 MAE up to 3 % above float32) and the int8 MAE is also
    more than ``abs_floor`` (window-std units) above float32.

    The floor matters when the float32 error is itself near zero (a series that is flat
    most of the time): int8's rounding, a fraction of a percent of a window-std, is then
    a large share of a tiny number without making the model any less usable."""
    excess = metrics.int8.mae - metrics.float32.mae
    within_floor = abs_floor > 0 and excess <= abs_floor
    if not (metrics.int8_mae_increase <= max_increase or within_floor):
        raise ConversionRefused(
            metrics.float32.mae, metrics.int8.mae, metrics.int8_mae_increase, max_increase
        )

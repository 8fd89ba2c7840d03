"""The forecaster: a window of one channel's readings in, forecasts at each horizon out.

One instance wraps one TFLite interpreter. The per-sample path (``forecast``) is
allocation-free apart from what the interpreter binding itself does: the window is
normalised and quantized into preallocated buffers and the result is written into a
reused output array.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from edge_agent.errors import WindowInvalid
from edge_agent.model.inference.backend import Backend, Interpreter, resolve
from edge_agent.model.inference.quantization import INT8_MAX, INT8_MIN, QuantParams
from edgetwin_common.logs import native_stderr_to_log
from edgetwin_contracts.errors import ModelUnloadable, TensorSpecMismatch
from edgetwin_contracts.manifest import Normalization

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
_INT8_MIN_F = float(INT8_MIN)
_INT8_MAX_F = float(INT8_MAX)


class Forecaster:
    """Runs a univariate int8 forecaster.

    Args:
        model_bytes: the verified model.tflite contents.
        window_length: samples per input window (the model's input width).
        horizons: samples ahead of each output, ascending.
        normalization: how each window is standardised before quantization.
        backend: "auto", "ai-edge-litert" or "tflite-runtime".
        num_threads: interpreter threads (1 is fastest for models this small).
        source: a name for error messages (the bundle path).

    Raises:
        BackendUnavailable: no interpreter could be imported.
        ModelUnloadable: the interpreter refused the model.
        TensorSpecMismatch: input/output tensors are not int8 [1, window_length] /
            [1, len(horizons)] or not per-tensor quantized.
    """

    def __init__(
        self,
        model_bytes: bytes,
        *,
        window_length: int,
        horizons: Sequence[int],
        normalization: Normalization | None = None,
        backend: str | Backend = "auto",
        num_threads: int = 1,
        source: str = "<memory>",
    ) -> None:
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.backend, factory = resolve(backend)
        self.window_length = int(window_length)
        self.horizons = tuple(int(h) for h in horizons)
        norm = normalization or Normalization()
        self._min_std_abs = float(norm.min_std_abs)
        self._min_std_rel = float(norm.min_std_rel)
        try:
            # The runtime prints an INFO line per load on stderr: logged at debug instead.
            with native_stderr_to_log(log):
                interpreter = factory(model_content=model_bytes, num_threads=num_threads)
                interpreter.allocate_tensors()
        except Exception as exc:  # the bindings raise ValueError/RuntimeError, by version
            raise ModelUnloadable(source, f"{type(exc).__name__}: {exc}") from None
        self._interpreter: Interpreter = interpreter
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        _check_tensors(source, inputs, outputs, self.window_length, len(self.horizons))
        self.input_quant = QuantParams.from_tensor_details(inputs[0])
        self.output_quant = QuantParams.from_tensor_details(outputs[0])
        self._in_index = int(inputs[0]["index"])
        self._out_index = int(outputs[0]["index"])
        # |z| of any window is at most sqrt(n - 1) (population std, std_eff >= std), so
        # when the input tensor's range covers that, saturation can never happen and
        # the (slow on short arrays) clip is skipped.
        bound = math.sqrt(self.window_length - 1)
        self._needs_clip = not (
            self.input_quant.real_min <= -bound and self.input_quant.real_max >= bound
        )
        self._ones = np.ones(self.window_length, dtype=np.float64)
        self._scratch = np.empty(self.window_length, dtype=np.float64)
        self._in_q = np.zeros((1, self.window_length), dtype=np.int8)
        self._out_q = np.zeros(len(self.horizons), dtype=np.int8)
        self._forecast = np.zeros(len(self.horizons), dtype=np.float64)

    @property
    def last_output_q(self) -> npt.NDArray[np.int8]:
        """The int8 output tensor of the last ``forecast`` call (reused buffer)."""
        return self._out_q

    def forecast(self, window: FloatArray) -> FloatArray:
        """Forecast one channel ``horizons`` samples past the end of ``window``.

        Args:
            window: float64 array of exactly ``window_length`` readings, oldest first,
                in channel units; finite values only.

        Returns:
            float64 array (one value per horizon, channel units). The array is reused by
            the next call: copy it to keep it.

        Raises:
            WindowInvalid: wrong length, or the window holds NaN/inf.
        """
        if window.shape != self._scratch.shape:
            raise WindowInvalid(
                f"window has shape {window.shape}, the model needs ({self.window_length},)"
            )
        n = self.window_length
        # Two dot products give the window's sum and sum of squares faster than
        # mean()/std() on short arrays; float64 keeps the cancellation harmless here.
        total = float(np.dot(window, self._ones))
        if not math.isfinite(total):
            raise WindowInvalid("window holds NaN or inf")
        mean = total / n
        var = float(np.dot(window, window)) / n - mean * mean
        std = math.sqrt(var) if var > 0.0 else 0.0
        std = max(std, self._min_std_abs, self._min_std_rel * abs(mean))
        # q = rint(((x - mean) / std) / scale + zp), folded into one multiply-add.
        gain = 1.0 / (std * self.input_quant.scale)
        scratch = self._scratch
        np.multiply(window, gain, out=scratch)
        np.add(scratch, self.input_quant.zero_point - mean * gain, out=scratch)
        np.rint(scratch, out=scratch)
        if self._needs_clip:
            np.maximum(scratch, _INT8_MIN_F, out=scratch)
            np.minimum(scratch, _INT8_MAX_F, out=scratch)
        self._in_q[0] = scratch
        interpreter = self._interpreter
        interpreter.set_tensor(self._in_index, self._in_q)
        interpreter.invoke()
        raw = interpreter.get_tensor(self._out_index)[0]
        self._out_q[:] = raw
        out = self._forecast
        out[:] = raw
        # f = ((q - zp) * scale) * std + mean, as one multiply-add.
        step = self.output_quant.scale * std
        np.multiply(out, step, out=out)
        np.add(out, mean - self.output_quant.zero_point * step, out=out)
        return out


def _check_tensors(
    source: str,
    inputs: list[dict[str, object]],
    outputs: list[dict[str, object]],
    window_length: int,
    n_horizons: int,
) -> None:
    problems = []
    if len(inputs) != 1 or len(outputs) != 1:
        raise TensorSpecMismatch(
            source, f"model has {len(inputs)} inputs and {len(outputs)} outputs, expected 1 and 1"
        )
    for role, details, expected in (
        ("input", inputs[0], [1, window_length]),
        ("output", outputs[0], [1, n_horizons]),
    ):
        shape = [int(d) for d in np.asarray(details["shape"]).tolist()]
        if shape != expected:
            problems.append(f"{role} tensor shape is {shape}, manifest implies {expected}")
        dtype = np.dtype(details["dtype"])  # type: ignore[call-overload]
        if dtype != np.int8:
            problems.append(f"{role} tensor dtype is {dtype}, expected int8 (full-integer model)")
        try:
            QuantParams.from_tensor_details(details)
        except ValueError as exc:
            problems.append(f"{role} tensor is not per-tensor quantized ({exc})")
    if problems:
        raise TensorSpecMismatch(source, "; ".join(problems))

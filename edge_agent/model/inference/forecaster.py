"""The forecaster: a window of one channel's readings in, forecasts at each horizon out.

One instance wraps one TFLite interpreter. The per-sample path (``forecast``) allocates
nothing: the window is centred by one matrix-vector product into a reused buffer,
quantized straight into the interpreter's own input tensor and the output tensor is read
through a view held for the forecaster's lifetime and dequantized into a reused array.
Every per-call scalar that numpy needs goes in through a 0-d array: passing a Python
float makes numpy convert it on every ufunc call, which costs as much as the arithmetic
on arrays this short.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from edge_agent.errors import WindowInvalid
from edge_agent.model.inference.backend import Backend, Interpreter, raw_invoke, resolve
from edge_agent.model.inference.quantization import INT8_MAX, INT8_MIN, QuantParams
from edgetwin_common.logs import native_stderr_to_log
from edgetwin_contracts.errors import ModelUnloadable, TensorSpecMismatch
from edgetwin_contracts.manifest import Normalization

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
_FLOAT64 = np.dtype(np.float64)
_multiply = np.multiply
_add = np.add
_rint = np.rint
_minimum = np.minimum
_maximum = np.maximum
_isfinite = math.isfinite
_sqrt = math.sqrt


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
        n = self.window_length = int(window_length)
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
        _check_tensors(source, inputs, outputs, n, len(self.horizons))
        iq = self.input_quant = QuantParams.from_tensor_details(inputs[0])
        oq = self.output_quant = QuantParams.from_tensor_details(outputs[0])
        self._in_index = int(inputs[0]["index"])
        self._out_index = int(outputs[0]["index"])
        self._invoke = raw_invoke(interpreter, source)
        # Views into the interpreter's tensors, valid as long as it is not re-allocated
        # (it never is after this point; see backend.raw_invoke).
        self._in_q: npt.NDArray[np.int8] = interpreter.tensor(self._in_index)()
        self._in_row = self._in_q[0]
        self._out_row: npt.NDArray[np.int8] = interpreter.tensor(self._out_index)()[0]
        self._prepare(n, iq, oq)

    @property
    def last_output_q(self) -> npt.NDArray[np.int8]:
        """A copy of the int8 output tensor of the last ``forecast`` call."""
        return self._out_row.copy()

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
        (
            n,
            centring,
            window_row,
            centred,
            deviations,
            scratch,
            gain,
            in_scale,
            min_std_abs,
            min_std_rel,
            in_row,
            out_row,
            out_scale,
            step_q,
            offset_q,
            out_zero_point,
            out,
            invoke,
            clip_high,
            int8_max,
            shift_or_clip_low,
        ) = self._hot
        try:
            if window.dtype is not _FLOAT64:
                raise TypeError
            window_row[...] = window
            centring.dot(window, centred)  # ValueError for any other shape
        except (AttributeError, TypeError, ValueError):
            window = self._as_window(window)
            window_row[...] = window
            centring.dot(window, centred)
        mean = centred.item(n)
        if not _isfinite(mean):
            raise WindowInvalid("window holds NaN or inf")
        # The variance as edgetwin_contracts.normalization defines it (sum of squares),
        # so that the device quantizes exactly the z-scores the model was trained on.
        var = centred.item(n + 1) / n - mean * mean
        std = _sqrt(var) if var > 0.0 else 0.0
        floor = min_std_rel * abs(mean)
        if floor < min_std_abs:
            floor = min_std_abs
        if std < floor:
            std = floor
        # q = clip(rint(z / scale) + zp): rint before adding the integer zero point, as
        # quantization.quantize does it.
        gain[()] = 1.0 / (std * in_scale)
        _multiply(deviations, gain, scratch)
        _rint(scratch, scratch)
        if shift_or_clip_low:
            self._shift_and_clip_low(scratch)
        if clip_high:
            _minimum(scratch, int8_max, out=scratch)
        in_row[...] = scratch
        invoke()
        # f = ((q - zp) * scale) * std + mean, as one multiply-add.
        step = out_scale * std
        step_q[()] = step
        offset_q[()] = mean - out_zero_point * step
        _multiply(out_row, step_q, out)
        _add(out, offset_q, out)
        return out

    def _prepare(self, n: int, iq: QuantParams, oq: QuantParams) -> None:
        """The buffers and constants ``forecast`` reuses on every call."""
        # Rows 0..n-1 give x - mean, row n the mean and row n + 1, a copy of the window
        # made on each call, the sum of squares: one matrix-vector product instead of a
        # sum, a dot product, a subtraction and their temporaries.
        centring = np.full((n + 2, n), -1.0 / n)
        centring[np.arange(n), np.arange(n)] += 1.0
        centring[n] = 1.0 / n
        self._centring = centring
        self._window_row = centring[n + 1]
        self._centred = np.zeros(n + 2)
        self._deviations = self._centred[:n]
        self._scratch = np.zeros(n)
        # |z| of any window is at most sqrt(n - 1) (population std, std_eff >= std), so
        # the quantized value stays within zp +- sqrt(n - 1) / scale (+ float slack) and
        # each side's clip is only needed when that reaches past the int8 range.
        reach = math.sqrt(n - 1) * (1.0 + 1e-6) / iq.scale
        self._clip_high = iq.zero_point + reach >= INT8_MAX + 0.5
        self._clip_low = iq.zero_point - reach <= INT8_MIN - 0.5
        self._int8_max = np.array(float(INT8_MAX))
        self._int8_min = np.array(float(INT8_MIN))
        self._in_zero_point = np.array(float(iq.zero_point))
        self._shift_zero_point = iq.zero_point != 0
        self._in_scale = iq.scale
        self._out_scale = oq.scale
        self._out_zero_point = float(oq.zero_point)
        self._gain = np.zeros(())
        self._step = np.zeros(())
        self._offset = np.zeros(())
        self._forecast = np.zeros(len(self.horizons), dtype=np.float64)
        # What forecast() reads on every call, in one tuple unpacked at its start: one
        # attribute lookup instead of one per name.
        self._hot = (
            n,
            self._centring,
            self._window_row,
            self._centred,
            self._deviations,
            self._scratch,
            self._gain,
            self._in_scale,
            self._min_std_abs,
            self._min_std_rel,
            self._in_row,
            self._out_row,
            self._out_scale,
            self._step,
            self._offset,
            self._out_zero_point,
            self._forecast,
            self._invoke,
            self._clip_high,
            self._int8_max,
            self._shift_zero_point or self._clip_low,
        )

    def _shift_and_clip_low(self, scratch: FloatArray) -> None:
        """The zero point and the low clip, which the shipped model does not need (its
        input zero point is 0 and its range reaches below any z-score)."""
        if self._shift_zero_point:
            _add(scratch, self._in_zero_point, scratch)
        if self._clip_low:
            _maximum(scratch, self._int8_min, out=scratch)

    def _as_window(self, window: object) -> FloatArray:
        """The slow path for anything but a float64 array of the right shape."""
        try:
            array = np.asarray(window, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise WindowInvalid(f"window is not an array of numbers: {exc}") from None
        if array.shape != (self.window_length,):
            raise WindowInvalid(
                f"window has shape {array.shape}, the model needs ({self.window_length},)"
            )
        return array


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

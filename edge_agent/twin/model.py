"""The twin model runner: a cross-channel int8 step model on LiteRT, rolled forward.

One step reads the last ``window_steps`` rows of every channel (z-scored with the
manifest's fixed per-channel center and scale, so levels across channels keep their
meaning) plus the controls' next value, and gives each output channel's next change.
``roll`` repeats it under a control trajectory. The window lives in a buffer twice its
length: each step writes one row and the model reads a contiguous slice, so a step
copies no window and allocates nothing; the buffer is folded back only once per
``window_steps`` steps.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.model.inference.backend import Backend, Interpreter, raw_invoke, resolve
from edge_agent.model.inference.quantization import INT8_MAX, INT8_MIN, QuantParams
from edge_agent.twin.errors import NotATwinBundle, TwinStateIncomplete
from edgetwin_common.logs import native_stderr_to_log
from edgetwin_contracts.bundle import read_verified
from edgetwin_contracts.errors import GoldenVectorMismatch, ModelUnloadable, TensorSpecMismatch
from edgetwin_contracts.manifest import Manifest, TwinSpec

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


class TwinModel:
    """Runs one twin model.

    Args:
        model_bytes: the verified model.tflite contents.
        spec: the manifest's ``twin`` section.
        backend, num_threads, source: as for the per-channel ``Forecaster``.

    Raises:
        BackendUnavailable, ModelUnloadable, TensorSpecMismatch (tensors are not int8
        [1, input_width] -> [1, outputs], or not per-tensor quantized).
    """

    def __init__(
        self,
        model_bytes: bytes,
        spec: TwinSpec,
        *,
        backend: str | Backend = "auto",
        num_threads: int = 1,
        source: str = "<memory>",
    ) -> None:
        self.spec = spec
        self.backend, factory = resolve(backend)
        self.channels = [c.name for c in spec.channels]
        self.outputs = spec.outputs
        self.controls = list(spec.controls)
        n_ch, n_out, w = len(self.channels), len(self.outputs), spec.window_steps
        try:
            with native_stderr_to_log(log):
                interpreter = factory(model_content=model_bytes, num_threads=num_threads)
                interpreter.allocate_tensors()
        except Exception as exc:  # the bindings raise ValueError/RuntimeError, by version
            raise ModelUnloadable(source, f"{type(exc).__name__}: {exc}") from None
        self._interpreter: Interpreter = interpreter
        # Kept for TwinBatch (edge_agent/twin/batch.py): a second interpreter over the same
        # verified bytes, its input resized to a batch of candidate plans.
        self.model_bytes = model_bytes
        self.factory = factory
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        _check_tensors(source, inputs, outputs, spec.input_width, n_out)
        self.input_quant = QuantParams.from_tensor_details(inputs[0])
        self.output_quant = QuantParams.from_tensor_details(outputs[0])
        self._invoke = raw_invoke(interpreter, source)
        self._in_row: npt.NDArray[np.int8] = interpreter.tensor(int(inputs[0]["index"]))()[0]
        self._out_row: npt.NDArray[np.int8] = interpreter.tensor(int(outputs[0]["index"]))()[0]
        self._center = np.array([c.center for c in spec.channels])
        self._scale = np.array([c.scale for c in spec.channels])
        # One output step in z units of its channel: step_scale / scale, times the
        # output tensor's own quantization step.
        step_scale = np.array([c.step_scale or 1.0 for c in spec.channels[:n_out]])
        self._out_gain = step_scale / self._scale[:n_out] * self.output_quant.scale
        self._out_zp = np.full(n_out, float(self.output_quant.zero_point))
        self._in_gain = np.array(1.0 / self.input_quant.scale)
        self._in_zp = np.array(float(self.input_quant.zero_point))
        self._w, self._n_ch, self._n_out = w, n_ch, n_out
        self._buf = np.zeros((2 * w, n_ch))  # z-scores, rows oldest first
        self._flat = self._buf.reshape(-1)
        self._end = w  # rows [end - w, end) are the current window
        self._scratch = np.zeros(spec.input_width)
        # Every view a step uses, made once: the window for each end position, and for
        # each row written, the previous row's outputs and the new row's parts.
        flat = self._flat
        self._windows = [flat[(e - w) * n_ch : e * n_ch] for e in range(w, 2 * w + 1)]
        b = self._buf
        self._rows: list[tuple[FloatArray, FloatArray, FloatArray, FloatArray]] = [
            (b[r - 1, :n_out], b[r, :n_out], b[r, n_out:], b[r]) for r in range(w - 1, 2 * w)
        ]
        self._body = self._scratch[: w * n_ch]
        self._controls_q = self._scratch[w * n_ch :]
        self._fold_to, self._fold_from = b[: w - 1], b[w + 1 :]
        self._delta = np.zeros(n_out)
        self._lo, self._hi = np.array(float(INT8_MIN)), np.array(float(INT8_MAX))

    @property
    def window_steps(self) -> int:
        return self._w

    def load_state(self, history: FloatArray) -> None:
        """Start from ``history``: (window_steps, channels) in channel units, oldest row
        first, columns in ``self.channels`` order.

        Raises TwinStateIncomplete: wrong shape, or a NaN/inf in it.
        """
        h = np.asarray(history, dtype=np.float64)
        if h.shape != (self._w, self._n_ch):
            raise TwinStateIncomplete(
                f"the twin needs {self._w} periods of {self.channels}, got shape {h.shape}"
            )
        if not np.all(np.isfinite(h)):
            raise TwinStateIncomplete("the twin's history holds NaN or inf")
        z = self._buf[: self._w]
        with np.errstate(over="ignore", invalid="ignore"):
            np.subtract(h, self._center, out=z)
            np.divide(z, self._scale, out=z)
        # int8 saturates at +-128 input steps: anything far beyond is not a state the
        # twin was trained near, and its path would be made up
        if not np.all(np.abs(z) < 1e6):
            raise TwinStateIncomplete(
                "the state is too far outside the twin's range to roll forward"
            )
        self._end = self._w

    def step(self, controls_z: FloatArray) -> FloatArray:
        """One period ahead: ``controls_z`` (the controls' z-scores for the next period)
        in, the new row of z-scores (outputs then controls) out, a view into the buffer
        valid until the next call."""
        w, end = self._w, self._end
        scratch = self._scratch
        np.multiply(self._windows[end - w], self._in_gain, out=self._body)
        np.multiply(controls_z, self._in_gain, out=self._controls_q)
        np.rint(scratch, out=scratch)
        np.add(scratch, self._in_zp, out=scratch)
        # minimum/maximum, not np.clip: clip's Python wrapper allocates on every call
        np.minimum(scratch, self._hi, out=scratch)
        np.maximum(scratch, self._lo, out=scratch)
        self._in_row[...] = scratch
        self._invoke()
        if end == 2 * w:  # fold: the last w - 1 rows to the front, once per w steps
            self._fold_to[...] = self._fold_from
            end = w - 1
        last_out, new_out, new_controls, new = self._rows[end - w + 1]
        delta = self._delta
        np.subtract(self._out_row, self._out_zp, out=delta)
        np.multiply(delta, self._out_gain, out=delta)
        np.add(last_out, delta, out=new_out)
        new_controls[...] = controls_z
        self._end = end + 1
        return new

    def roll(self, controls: FloatArray, out: FloatArray | None = None) -> FloatArray:
        """Roll forward from the loaded state under ``controls`` ((steps, controls) in
        channel units, one row per period ahead). Returns (steps, outputs) in channel
        units; the loaded state is kept (each call starts from it)."""
        steps = len(controls)
        c = np.asarray(controls, dtype=np.float64).reshape(steps, len(self.controls))
        n_out = self._n_out
        z_controls = (c - self._center[n_out:]) / self._scale[n_out:]
        path = np.empty((steps, n_out)) if out is None else out
        saved = self._buf[self._end - self._w : self._end].copy()
        for i in range(steps):
            path[i] = self.step(z_controls[i])[:n_out]
        np.multiply(path, self._scale[:n_out], out=path)
        np.add(path, self._center[:n_out], out=path)
        self._buf[: self._w] = saved
        self._end = self._w
        return path

    def invoke_z(self, row_z: FloatArray) -> FloatArray:
        """The model's output (next changes in step_scale units) for one input row of
        z-scores, as a new array; for measuring the int8 model, not on the hot path."""
        q = np.rint(np.asarray(row_z, dtype=np.float64) * self._in_gain) + self._in_zp
        self._in_row[...] = np.clip(q, INT8_MIN, INT8_MAX)
        self._invoke()
        oq = self.output_quant
        return (self._out_row.astype(np.float64) - oq.zero_point) * oq.scale

    def run_raw(self, row: FloatArray) -> tuple[npt.NDArray[np.int8], FloatArray]:
        """One step from a raw input row (the flattened window in channel units, then
        the controls' next values): the int8 output and the next values in channel
        units. Used for golden vectors; not on the hot path."""
        r = np.asarray(row, dtype=np.float64)
        w, n_ch = self._w, self._n_ch
        self.load_state(r[: w * n_ch].reshape(w, n_ch))
        controls = (r[w * n_ch :] - self._center[self._n_out :]) / self._scale[self._n_out :]
        new = self.step(controls)[: self._n_out].copy()
        self._end = self._w
        return self._out_row.copy(), new * self._scale[: self._n_out] + self._center[: self._n_out]


@dataclass(frozen=True, slots=True)
class LoadedTwin:
    """A verified twin bundle and its ready model."""

    path: Path
    manifest: Manifest
    model: TwinModel

    @property
    def spec(self) -> TwinSpec:
        assert self.manifest.twin is not None  # load_twin refuses a bundle without one
        return self.manifest.twin

    @property
    def period_s(self) -> float:
        assert self.manifest.input.sample_period_s is not None  # the manifest requires it
        return self.manifest.input.sample_period_s


def load_twin(
    path: Path, public_key: Ed25519PublicKey, *, backend: str | Backend = "auto"
) -> LoadedTwin:
    """Verify and load the twin bundle in ``path``: signature, schema, hash, tensors,
    quantization and golden vectors, all before a ``LoadedTwin`` exists.

    Raises a ``BundleRejected`` subclass, NotATwinBundle, or BackendUnavailable.
    """
    verified = read_verified(path, public_key)
    manifest = verified.manifest
    if manifest.twin is None:
        raise NotATwinBundle(f"{path} is a per-channel forecaster bundle, not a twin")
    source = str(path)
    model = TwinModel(verified.model_bytes, manifest.twin, backend=backend, source=source)
    for role, declared, actual in (
        ("input", manifest.quantization.input, model.input_quant),
        ("output", manifest.quantization.output, model.output_quant),
    ):
        if declared.zero_point != actual.zero_point or not math.isclose(
            declared.scale, actual.scale, rel_tol=1e-6
        ):
            raise TensorSpecMismatch(source, f"{role} quantization differs from the manifest")
    tolerance = manifest.golden.tolerance_lsb
    for i, vector in enumerate(manifest.golden.vectors):
        got, _ = model.run_raw(np.asarray(vector.input))
        worst = int(np.max(np.abs(got.astype(np.int16) - np.asarray(vector.output_q))))
        if worst > tolerance:
            raise GoldenVectorMismatch(
                source, f"vector {i}: int8 outputs differ from recorded by {worst} steps"
            )
    return LoadedTwin(path, manifest, model)


def _check_tensors(
    source: str,
    inputs: list[dict[str, object]],
    outputs: list[dict[str, object]],
    width: int,
    n_out: int,
) -> None:
    if len(inputs) != 1 or len(outputs) != 1:
        raise TensorSpecMismatch(source, "a twin model has one input and one output tensor")
    problems = []
    for role, details, expected in (
        ("input", inputs[0], [1, width]),
        ("output", outputs[0], [1, n_out]),
    ):
        shape = [int(d) for d in np.asarray(details["shape"]).tolist()]
        if shape != expected:
            problems.append(f"{role} tensor shape is {shape}, manifest implies {expected}")
        if np.dtype(details["dtype"]) != np.int8:  # type: ignore[call-overload]
            problems.append(f"{role} tensor is not int8 (full-integer model)")
        try:
            QuantParams.from_tensor_details(details)
        except ValueError as exc:
            problems.append(f"{role} tensor is not per-tensor quantized ({exc})")
    if problems:
        raise TensorSpecMismatch(source, "; ".join(problems))

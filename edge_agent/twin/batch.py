"""The twin rolled forward under many control plans at once, from one state.

A search (the advisor) asks for the paths of tens of candidate plans from the same
state. ``TwinModel.roll`` runs them one after another, one int8 row per invoke;
``TwinBatch`` runs a second interpreter over the same verified model bytes with its
input resized to (rows, input_width), so one invoke steps every candidate. The int8
fully-connected kernels treat rows independently, so each row's path is the one
``TwinModel.roll`` gives (tests/edge_agent/twin/advisor/test_twin_predictor.py checks it).

Everything a roll touches is allocated once per (rows, steps): the z-score buffer (the
history, then one row per step), the views of each step's window into it, the int8
tensors' views and the scratch rows; a step allocates nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from edge_agent.model.inference.backend import Interpreter, raw_invoke
from edge_agent.model.inference.quantization import INT8_MAX, INT8_MIN, QuantParams
from edge_agent.twin.errors import TwinStateIncomplete
from edge_agent.twin.model import TwinModel
from edgetwin_common.logs import native_stderr_to_log
from edgetwin_contracts.errors import ModelUnloadable

__all__ = ["TwinBatch"]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


class _Resizable(Protocol):
    def resize_tensor_input(self, input_index: int, tensor_size: Any) -> None: ...


class TwinBatch:
    """Rolls ``rows`` control plans of up to ``steps`` periods each from one state.

    Raises ModelUnloadable when the backend refuses the resized interpreter.
    """

    def __init__(self, model: TwinModel, rows: int, steps: int) -> None:
        if rows < 1 or steps < 1:
            raise ValueError(f"a batch needs rows >= 1 and steps >= 1, got {rows}, {steps}")
        spec = model.spec
        self.rows, self.steps = rows, steps
        w, n_ch, n_out = spec.window_steps, len(model.channels), len(model.outputs)
        self._w, self._n_ch, self._n_out = w, n_ch, n_out
        width = spec.input_width
        try:
            with native_stderr_to_log(log):
                interpreter = model.factory(model_content=model.model_bytes, num_threads=1)
                index = int(interpreter.get_input_details()[0]["index"])
                cast(_Resizable, interpreter).resize_tensor_input(index, [rows, width])
                interpreter.allocate_tensors()
        except Exception as exc:  # the bindings raise ValueError/RuntimeError, by version
            raise ModelUnloadable("twin batch", f"{type(exc).__name__}: {exc}") from None
        self._interpreter: Interpreter = interpreter
        out_index = int(interpreter.get_output_details()[0]["index"])
        self._invoke = raw_invoke(interpreter, "twin batch")
        self._in: npt.NDArray[np.int8] = interpreter.tensor(index)()
        self._out: npt.NDArray[np.int8] = interpreter.tensor(out_index)()
        in_q = QuantParams.from_tensor_details(interpreter.get_input_details()[0])
        out_q = QuantParams.from_tensor_details(interpreter.get_output_details()[0])
        self._center = np.array([c.center for c in spec.channels])
        self._scale = np.array([c.scale for c in spec.channels])
        step_scale = np.array([c.step_scale or 1.0 for c in spec.channels[:n_out]])
        self._out_gain = step_scale / self._scale[:n_out] * out_q.scale
        self._out_zp = np.full(n_out, float(out_q.zero_point))
        self._in_gain = np.array(1.0 / in_q.scale)
        self._in_zp = np.array(float(in_q.zero_point))
        self._lo, self._hi = np.array(float(INT8_MIN)), np.array(float(INT8_MAX))
        self._buf = np.zeros((rows, w + steps, n_ch))
        # The window of step i is rows [i, i + w) of every plan: a (rows, w * n_ch) view
        # (the two inner axes are contiguous), made once.
        self._windows = [self._buf[:, i : i + w, :].reshape(rows, w * n_ch) for i in range(steps)]
        self._scratch = np.zeros((rows, width))
        self._body = self._scratch[:, : w * n_ch]
        self._controls_q = self._scratch[:, w * n_ch :]
        self._delta = np.zeros((rows, n_out))
        self._z_controls = np.zeros((rows, steps, n_ch - n_out))
        self._offsets_z = np.zeros((steps, n_out))
        self.path = np.zeros((rows, steps, n_out))
        """The last roll's output paths, channel units (valid until the next roll)."""

    def roll(
        self, history: FloatArray, controls: FloatArray, offsets: FloatArray | None = None
    ) -> FloatArray:
        """Every plan from ``history`` ((window_steps, channels), channel units, the
        twin's channel order; or (rows, window_steps, channels), one state per plan):
        ``controls`` is (rows, n, controls) in channel units, one row per period ahead,
        n <= steps. ``offsets`` ((n, outputs), channel units): added to each step's
        predicted change (a disturbance the model does not know, e.g. an unexplained
        heat). Returns (rows, n, outputs) in channel units, a view of ``path`` valid
        until the next call.

        Raises TwinStateIncomplete for a history of the wrong shape or not finite.
        """
        w, n_out = self._w, self._n_out
        h = np.asarray(history, dtype=np.float64)
        if h.shape[-2:] != (w, self._n_ch) or h.ndim not in (2, 3) or not np.all(np.isfinite(h)):
            raise TwinStateIncomplete(
                f"the twin needs {w} finite periods of {self._n_ch} channels, got {h.shape}"
            )
        n = controls.shape[1]
        if controls.shape[0] != self.rows or n > self.steps:
            raise ValueError(
                f"controls {controls.shape} do not fit the batch ({self.rows}, {self.steps})"
            )
        buf = self._buf
        np.subtract(h, self._center, out=buf[:, :w, :])
        np.divide(buf[:, :w, :], self._scale, out=buf[:, :w, :])
        zc = self._z_controls[:, :n, :]
        np.subtract(controls, self._center[n_out:], out=zc)
        np.divide(zc, self._scale[n_out:], out=zc)
        scratch, delta = self._scratch, self._delta
        shift = None
        if offsets is not None:
            shift = self._offsets_z[:n]
            np.divide(offsets, self._scale[:n_out], out=shift)
        for i in range(n):
            np.multiply(self._windows[i], self._in_gain, out=self._body)
            np.multiply(zc[:, i, :], self._in_gain, out=self._controls_q)
            np.rint(scratch, out=scratch)
            np.add(scratch, self._in_zp, out=scratch)
            np.minimum(scratch, self._hi, out=scratch)
            np.maximum(scratch, self._lo, out=scratch)
            self._in[...] = scratch
            self._invoke()
            np.subtract(self._out, self._out_zp, out=delta)
            np.multiply(delta, self._out_gain, out=delta)
            if shift is not None:
                np.add(delta, shift[i], out=delta)
            np.add(buf[:, w + i - 1, :n_out], delta, out=buf[:, w + i, :n_out])
            buf[:, w + i, n_out:] = zc[:, i, :]
        path = self.path[:, :n, :]
        np.multiply(buf[:, w : w + n, :n_out], self._scale[:n_out], out=path)
        np.add(path, self._center[:n_out], out=path)
        return path

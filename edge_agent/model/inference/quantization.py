"""int8 affine quantization, as TFLite defines it: real = scale * (q - zero_point).

Quantizing rounds half to even (numpy's rint) and saturates to [-128, 127]. Functions
take an optional ``out`` buffer so the per-sample path can reuse memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

INT8_MIN = -128
INT8_MAX = 127


@dataclass(frozen=True, slots=True)
class QuantParams:
    """Per-tensor quantization: ``scale`` > 0 (real units per step), ``zero_point`` in int8."""

    scale: float
    zero_point: int

    def __post_init__(self) -> None:
        if not (self.scale > 0 and np.isfinite(self.scale)):
            raise ValueError(f"quantization scale must be finite and > 0, got {self.scale}")
        if not INT8_MIN <= self.zero_point <= INT8_MAX:
            raise ValueError(f"int8 zero_point must be in [-128, 127], got {self.zero_point}")

    @property
    def real_min(self) -> float:
        """Smallest representable real value."""
        return self.scale * (INT8_MIN - self.zero_point)

    @property
    def real_max(self) -> float:
        """Largest representable real value."""
        return self.scale * (INT8_MAX - self.zero_point)

    @classmethod
    def from_tensor_details(cls, details: dict[str, Any]) -> QuantParams:
        """Read a tensor's own per-tensor parameters from interpreter tensor details.

        Raises ValueError when the tensor is not per-tensor quantized.
        """
        qp = details.get("quantization_parameters") or {}
        scales = np.asarray(qp.get("scales", []))
        zero_points = np.asarray(qp.get("zero_points", []))
        if scales.size != 1 or zero_points.size != 1:
            scale, zero_point = details.get("quantization", (0.0, 0))
        else:
            scale, zero_point = float(scales[0]), int(zero_points[0])
        return cls(float(scale), int(zero_point))


def quantize(
    real: npt.ArrayLike, params: QuantParams, out: npt.NDArray[np.int8] | None = None
) -> npt.NDArray[np.int8]:
    """Real values to int8: ``clip(rint(real / scale) + zero_point, -128, 127)``."""
    scaled = np.rint(np.asarray(real, dtype=np.float64) / params.scale) + params.zero_point
    np.clip(scaled, INT8_MIN, INT8_MAX, out=scaled)
    if out is None:
        return scaled.astype(np.int8)
    out[...] = scaled
    return out


def dequantize(
    q: npt.ArrayLike, params: QuantParams, out: npt.NDArray[np.float64] | None = None
) -> npt.NDArray[np.float64]:
    """int8 to real values: ``scale * (q - zero_point)``."""
    if out is None:
        out = np.empty(np.shape(q), dtype=np.float64)
    # Widen before subtracting: int8 arithmetic would wrap (127 - (-1) -> -128).
    out[...] = q
    np.subtract(out, params.zero_point, out=out)
    np.multiply(out, params.scale, out=out)
    return out

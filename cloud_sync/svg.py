"""Small server-drawn SVG charts on the fleet page: data coordinates to pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlotFrame:
    """Maps times [t0, t1] and values [y0, y1] onto a width × height box inside ``pad``
    pixels; a single time sits in the middle, a flat or non-finite value range too."""

    t0: float
    t1: float
    y0: float
    y1: float
    width: float
    height: float
    pad: float

    def x(self, t: float) -> float:
        span = self.t1 - self.t0
        return self.pad + (self.width - 2 * self.pad) * ((t - self.t0) / span if span > 0 else 0.5)

    def y(self, v: float) -> float:
        span = self.y1 - self.y0
        if not span > 0 or not math.isfinite(span):
            return self.height / 2
        return self.height - self.pad - (self.height - 2 * self.pad) * (v - self.y0) / span

    def points(self, pairs: list[tuple[float, float]]) -> str:
        """An SVG ``points`` attribute."""
        return " ".join(f"{self.x(t):.1f},{self.y(v):.1f}" for t, v in pairs)

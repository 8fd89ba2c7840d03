"""What every anomaly score method shares: the scorer the channel pipeline drives, and
the base of the methods' config models.

A method is one module in this folder with its config model (``method: Literal[...]``,
deriving from ``ScoreMethodConfig``) and its scorer, listed once in ``registry.py``
(docs/architecture.md, "Adding a score method").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Protocol

from edgetwin_common.config import Strict


class AnomalyScorer(Protocol):
    """One channel's scorer. Not thread-safe."""

    @property
    def is_warm(self) -> bool:
        """Scores are no longer None."""
        ...

    def score(self, ts: float, actual: float, forecast: float) -> float | None:
        """Score ``actual`` (channel units, read at ``ts``, Unix seconds) against the
        one-step ``forecast`` made for it, then learn from it: >= 0, or None while warming
        up. Raises ValueError for a non-finite reading or forecast."""
        ...

    def parts(self) -> Mapping[str, float]:
        """The last score's parts by name (e.g. "residual", "spread", "likelihood",
        "novelty", "score"), for the reason of an alarm raised on it; empty before the
        first score. Called once per alarm raised, never per sample: ``score`` keeps the
        parts in preallocated fields and only this builds the mapping."""
        ...


class ScoreMethodConfig(Strict, ABC):
    """Keys every score method has."""

    method: str
    """The score method (docs/anomaly-score.md)."""

    @abstractmethod
    def build(self) -> AnomalyScorer:
        """A new scorer for one channel."""

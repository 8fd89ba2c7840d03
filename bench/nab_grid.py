"""Detector settings for the leave-one-category-out choice, re-scored offline.

A replay (bench/nab.py) keeps its per-sample results: each reading and the one-step
forecast made for it. The forecasts do not depend on the detector's settings (the
detector reads them, never feeds them), so any other setting of the shipped score
method is one pass of that method's scorer (built through the agent's own registry, the
class a device runs) over those pairs: no new replay, no new fine-tune. Each setting
gets NAB result files in the replay's layout, which nab.py scores like its own.

The grid is declared per score method, small on purpose (every extra setting is one more
chance for the chosen one to fit the categories it was chosen on): the settings the
realKnownCause sweep in docs/anomaly-quality.md found to matter, around the shipped
values. A method without a declared grid is scored with its shipped setting only.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from edge_agent.anomaly.base import AnomalyScorer
from edge_agent.anomaly.registry import ScoreConfig
from edgetwin_common.timestamps import parse_timestamp

SHIPPED = "shipped"
_ADAPTER: TypeAdapter[ScoreConfig] = TypeAdapter(ScoreConfig)

GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "likelihood": {
        "hold_level": (2.5, 3.0, 3.5),
        "hold_samples": (50, 100, 200),
        "range_weight": (2.0, 4.0, 8.0),
    },
}
"""score method -> setting -> the values tried (with the shipped value, if not listed)."""


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    """"shipped", or the keys that differ from it, e.g. "hold_samples=50,range_weight=2.0"."""
    score: dict[str, Any]
    """The whole [score] table."""


def settings(shipped: Mapping[str, Any]) -> list[Setting]:
    """The shipped [score] table first, then every combination of its method's grid."""
    grid = GRIDS.get(str(shipped.get("method")), {})
    keys = sorted(grid)
    base = validated(shipped)  # with the defaults the shipped table leaves out
    found = [Setting(SHIPPED, dict(shipped))]
    seen = [base]
    for values in itertools.product(*(grid[k] for k in keys)):
        score = {**shipped, **dict(zip(keys, values, strict=True))}
        full = validated(score)
        if full in seen:
            continue
        seen.append(full)
        name = ",".join(f"{k}={score[k]}" for k in keys if full[k] != base[k])
        found.append(Setting(name, score))
    return found


def validated(score: Mapping[str, Any]) -> dict[str, Any]:
    """Every key of a [score] table, defaults included, validated as the agent does."""
    full: dict[str, Any] = _ADAPTER.validate_python(dict(score)).model_dump()
    return full


def build(score: Mapping[str, Any]) -> AnomalyScorer:
    """A new scorer from a [score] table, validated as the agent's config is."""
    return _ADAPTER.validate_python(dict(score)).build()


@dataclass(slots=True)
class Replayed:
    """One replay's per-sample pairs and its NAB result rows."""

    times: list[float]
    values: list[float]
    forecasts: list[float | None]
    nab_rows: list[list[str]]


def read_replay(forecasts: Path, nab_result: Path) -> Replayed:
    """The (time, value, forecast) of each model step of ``forecasts`` (edge-agent
    replay --out) and the rows of ``nab_result`` (--nab-out)."""
    times, values, made = [], [], []
    with forecasts.open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for row in reader:
            ts = parse_timestamp(row[0])
            if ts is None:
                raise SystemExit(f"{forecasts}: bad time {row[0]!r}")
            times.append(ts)
            values.append(float(row[2]))
            made.append(float(row[3]) if row[3] else None)
    with nab_result.open(newline="") as fh:
        nab_rows = list(csv.reader(fh))[1:]
    return Replayed(times, values, made, nab_rows)


def rescore(replayed: Replayed, score: Mapping[str, Any]) -> list[float]:
    """The NAB result scores under another [score] table: each model step's pair through
    a new scorer; a result row gets the score of the step at its time, 0 without one (a
    reading cleaning rejected, a warming detector), as the replay writes it."""
    scorer = build(score)
    steps: list[tuple[float, float]] = []  # (time, score) of each scored model step
    for ts, value, forecast in zip(
        replayed.times, replayed.values, replayed.forecasts, strict=True
    ):
        if forecast is not None:
            result = scorer.score(value, forecast)
            if result is not None:
                steps.append((ts, result))
    # In order, not by time: a row repeating an earlier time (rejected as a duplicate)
    # must not take the score of the row it repeats.
    scores: list[float] = []
    k = 0
    for row in replayed.nab_rows:
        if k < len(steps) and parse_timestamp(row[0]) == steps[k][0]:
            scores.append(steps[k][1])
            k += 1
        else:
            scores.append(0.0)
    return scores


def write_result(path: Path, replayed: Replayed, scores: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        write = csv.writer(fh).writerow
        write(("timestamp", "value", "anomaly_score"))
        for row, score in zip(replayed.nab_rows, scores, strict=True):
            write((row[0], row[1], repr(score)))


@dataclass(slots=True)
class Agreement:
    """How closely the offline re-scoring reproduces the replay's own scores."""

    rows: int = 0
    max_difference: float = 0.0
    flipped: int = 0
    """Rows on different sides of the fixed threshold."""


def write_settings(
    keys: list[str], out: Path, forecasts: Path, shipped: Mapping[str, Any], fixed: float
) -> tuple[list[Setting], Agreement]:
    """Result files for every setting under ``out/settings/<name>/`` (the shipped one
    re-scored too, to check the offline pass against the replay's own scores)."""
    grid = settings(shipped)
    agreement = Agreement()
    for key in keys:
        replayed = read_replay(forecasts / key, out / key)
        for setting in grid:
            scores = rescore(replayed, setting.score)
            if setting.name == SHIPPED:
                for row, score in zip(replayed.nab_rows, scores, strict=True):
                    own = float(row[2])
                    agreement.rows += 1
                    agreement.max_difference = max(agreement.max_difference, abs(own - score))
                    agreement.flipped += (own >= fixed) != (score >= fixed)
            write_result(out / "settings" / setting.name / key, replayed, scores)
    return grid, agreement

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
import math
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

NAB_SCORE: dict[str, Any] = {"method": "ensemble", "hold_level": 4.5, "hold_samples": 100}
"""The [score] table of the NAB bench's detector (bench/nab.py): its settings and its
fixed threshold (``hold_level``) chosen by leave-one-category-out
(docs/anomaly-quality.md)."""

GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "likelihood": {
        "hold_level": (2.5, 3.0, 3.5),
        "hold_samples": (50, 100, 200),
        "range_weight": (2.0, 4.0, 8.0),
    },
    "ensemble": {
        "habit_weight": (2.0, 4.0, 6.0),
        "hold_samples": (50, 100, 200),
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


def step_scores(replayed: Replayed, score: Mapping[str, Any]) -> list[float]:
    """Each model step's score under a [score] table (0.0 while warming up)."""
    scorer = build(score)
    scores = []
    for ts, value, forecast in zip(
        replayed.times, replayed.values, replayed.forecasts, strict=True
    ):
        result = scorer.score(ts, value, forecast) if forecast is not None else None
        scores.append(0.0 if result is None else result)
    return scores


def triggers(replayed: Replayed, update_row: int | None) -> list[int | None]:
    """Per model step, the result row of the reading that ran it (None: none did).

    While the model runs on every reading, a step runs at the reading of its time. After
    the OTA swap at ``update_row`` (None: no swap) the model runs on its own period P
    (PeriodMean, periods aligned to multiples of P): the step of the period starting at
    T runs at the first reading at or after T + P."""
    times = [parse_timestamp(row[0]) for row in replayed.nab_rows]
    rows = [(t if t is not None else -math.inf) for t in times]
    steps = replayed.times
    swap_at = rows[update_row] if update_row is not None and update_row < len(rows) else math.inf
    later = [t for t in steps if t >= swap_at]
    gaps = sorted(b - a for a, b in itertools.pairwise(later))
    period = gaps[len(gaps) // 2] if gaps else 0.0
    found: list[int | None] = []
    j = 0
    for ts in steps:
        lagged = ts > swap_at - period
        target = ts + period if lagged else ts
        while j < len(rows) and rows[j] < target:
            j += 1
        if j < len(rows) and (lagged or rows[j] == target):
            found.append(j)
        else:
            found.append(None)
    return found


def place(
    replayed: Replayed, scores: list[float], runs_at: list[int | None], update_row: int | None
) -> list[float]:
    """The result rows' scores: a row that ran steps gets the last one's score; after the
    swap a row that ran none carries the previous score (the agent writes its channel's
    last score); before it, such a row is a reading cleaning rejected: 0."""
    ran: dict[int, float] = {}
    for row, value in zip(runs_at, scores, strict=True):
        if row is not None:
            ran[row] = value
    out: list[float] = []
    last = 0.0
    for i in range(len(replayed.nab_rows)):
        if i in ran:
            last = ran[i]
            out.append(last)
        elif update_row is not None and i >= update_row:
            out.append(last)
        else:
            out.append(0.0)
    return out


def rescore(
    replayed: Replayed, score: Mapping[str, Any], update_row: int | None = None
) -> list[float]:
    """The NAB result scores under another [score] table, placed on the rows the replay
    writes them on (``triggers``, ``place``)."""
    runs_at = triggers(replayed, update_row)
    return place(replayed, step_scores(replayed, score), runs_at, update_row)


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
    keys: list[str],
    out: Path,
    forecasts: Path,
    shipped: Mapping[str, Any],
    fixed: float,
    update_rows: Mapping[str, int],
) -> tuple[list[Setting], Agreement]:
    """Result files for every setting under ``out/settings/<name>/``.

    Whether a device took its release at ``update_rows[key]`` (the first row after its
    probation) is read off the replay itself: the placement (with or without the swap)
    that reproduces the replay's own scores under the shipped setting is kept for every
    setting (which reading runs which model step does not depend on the detector). The
    agreement reports how closely the kept placement reproduces them."""
    grid = settings(shipped)
    agreement = Agreement()
    for key in keys:
        replayed = read_replay(forecasts / key, out / key)
        own = [float(row[2]) for row in replayed.nab_rows]
        shipped_steps = step_scores(replayed, shipped)
        best: tuple[float, int | None, list[int | None], list[float]] | None = None
        for update_row in (None, update_rows.get(key)):
            runs_at = triggers(replayed, update_row)
            placed = place(replayed, shipped_steps, runs_at, update_row)
            worst = max((abs(a - b) for a, b in zip(own, placed, strict=True)), default=0.0)
            if best is None or worst < best[0]:
                best = (worst, update_row, runs_at, placed)
        assert best is not None
        worst, update_row, runs_at, placed = best
        agreement.rows += len(own)
        agreement.max_difference = max(agreement.max_difference, worst)
        agreement.flipped += sum(
            (a >= fixed) != (b >= fixed) for a, b in zip(own, placed, strict=True)
        )
        for setting in grid:
            scores = (
                placed
                if setting.name == SHIPPED
                else place(replayed, step_scores(replayed, setting.score), runs_at, update_row)
            )
            write_result(out / "settings" / setting.name / key, replayed, scores)
    return grid, agreement

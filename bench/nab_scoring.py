"""NAB scoring, written from the published method (Lavin & Ahmad 2015, "Evaluating
Real-time Anomaly Detection Algorithms — the Numenta Anomaly Benchmark").

A detector gives every row of a series an anomaly score; at a threshold T, the rows
with score >= T are its detections. Each labelled anomaly window (about 10 % of the
file length split across its anomalies) is worth:

* its *first* detection, rewarded by a scaled sigmoid of its position in the window
  (A_TP at the window's start, falling towards 0 at its right end), or
* -A_FN when nothing in it is detected.

Every detection outside a window is a false positive costing A_FP times the scaled
sigmoid of its distance past the end of the preceding window (almost nothing right
after a window, the full A_FP three window-widths later or with no window before it).
The first 15 % of a file's rows (at most 750) are a probationary period: neither its
detections nor the parts of windows inside it are scored. The corpus score is the sum
over files at one threshold, chosen per profile to maximise it (NAB's optimizer), and
normalized so that the null detector scores 0 and a perfect detector 100.

Pure Python + the standard library: the tests import it, the bench runs it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750  # 0.15 * 5000, NAB's cap
NOTHING_DETECTED = math.inf
"""The threshold at which no row is a detection (every window a miss)."""


@dataclass(frozen=True, slots=True)
class Profile:
    """An application profile: weights of a true positive, a false positive, a miss."""

    name: str
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES: tuple[Profile, ...] = (
    Profile("standard", 1.0, 0.11, 1.0),
    Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)


def scaled_sigmoid(position: float) -> float:
    """2 / (1 + e^(5 x)) - 1: 0.987 at x = -1 (a window's left end), 0 at x = 0 (its
    right end), towards -1 for x > 0 (past it); exactly -1 from x = 3 on."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


MAX_TP = scaled_sigmoid(-1.0)


def probation_rows(rows: int) -> int:
    """Rows at the start of a file that are not scored: 15 % of them, at most 750."""
    return min(math.floor(PROBATION_FRACTION * rows), PROBATION_MAX_ROWS)


@dataclass(slots=True)
class LabelledSeries:
    """One file's rows as the scorer sees them.

    window[i]: index of the window row i lies in (into ``windows``), -1 outside;
    reward[i]: the unweighted sigmoid reward of a detection at row i (positive in a
    window, scaled so the window's first row gets exactly 1; <= 0 outside);
    windows: (first row, last row) of each window, inclusive.
    """

    name: str
    rows: int
    probation: int
    windows: list[tuple[int, int]]
    window: list[int]
    reward: list[float]


def label_series(
    name: str, timestamps: Sequence[str], windows: Sequence[Sequence[str]]
) -> LabelledSeries:
    """Label each row of a file from its anomaly windows ([start, end] timestamps that
    must be rows of the file, in order). Raises ValueError for a window whose ends are
    not rows of the file or that are out of order."""
    index: dict[str, int] = {}
    for i, ts in enumerate(timestamps):
        index.setdefault(ts, i)  # a repeated time (clock set back): its first row, as NAB
    spans: list[tuple[int, int]] = []
    for start, end in windows:
        if start not in index or end not in index:
            raise ValueError(f"{name}: window [{start}, {end}] does not start and end on rows")
        first, last = index[start], index[end]
        if last < first or (spans and first <= spans[-1][1]):
            raise ValueError(f"{name}: window [{start}, {end}] is out of order")
        spans.append((first, last))
    rows = len(timestamps)
    window = [-1] * rows
    reward = [0.0] * rows
    previous_end: int | None = None
    previous_width = 0
    k = 0
    for i in range(rows):
        if k < len(spans) and spans[k][0] <= i <= spans[k][1]:
            first, last = spans[k]
            width = last - first + 1
            window[i] = k
            reward[i] = scaled_sigmoid(-(last - i + 1) / width) / MAX_TP
            if i == last:
                previous_end, previous_width = last, width
                k += 1
        elif previous_end is None:
            reward[i] = -1.0
        else:
            # A one-row window has width - 1 == 0: any row after it is far past it.
            distance = (i - previous_end) / (previous_width - 1) if previous_width > 1 else 3.0
            reward[i] = scaled_sigmoid(distance)
    return LabelledSeries(name, rows, probation_rows(rows), spans, window, reward)


@dataclass(slots=True)
class SeriesResult:
    """One file at one threshold under one profile."""

    name: str
    score: float
    detected: int
    """Windows with at least one detection."""
    missed: int
    false_positives: int
    """Detections (rows) outside every window, after the probationary period."""
    delays: list[int | None] = field(default_factory=list)
    """Per scored window: rows from its first scored row to its first detection."""


def score_series(
    series: LabelledSeries, scores: Sequence[float], threshold: float, profile: Profile
) -> SeriesResult:
    """Score one file's anomaly scores at ``threshold`` (detection: score >= threshold)."""
    if len(scores) != series.rows:
        raise ValueError(f"{series.name}: {len(scores)} scores for {series.rows} rows")
    first_hit: dict[int, int] = {}
    scored_windows: dict[int, int] = {}
    total = 0.0
    false_positives = 0
    for i in range(series.probation, series.rows):
        k = series.window[i]
        if k >= 0:
            scored_windows.setdefault(k, i)
        if scores[i] < threshold:
            continue
        if k >= 0:
            first_hit.setdefault(k, i)
        else:
            false_positives += 1
            total += profile.a_fp * series.reward[i]
    delays: list[int | None] = []
    for k, first_row in sorted(scored_windows.items()):
        hit = first_hit.get(k)
        if hit is None:
            total -= profile.a_fn
            delays.append(None)
        else:
            # The earliest detection has the largest reward: only it counts.
            total += profile.a_tp * series.reward[hit]
            delays.append(hit - first_row)
    detected = len(first_hit)
    return SeriesResult(
        series.name, total, detected, len(scored_windows) - detected, false_positives, delays
    )


@dataclass(frozen=True, slots=True)
class Sweep:
    """The best corpus-wide threshold of one profile and its raw score."""

    threshold: float
    score: float


def optimize_threshold(
    corpus: Sequence[tuple[LabelledSeries, Sequence[float]]], profile: Profile
) -> Sweep:
    """NAB's threshold sweep over the whole corpus: every distinct score is a candidate
    threshold (plus "nothing detected"); the highest total wins, ties going to the
    higher threshold."""
    points: list[tuple[float, int, float]] = []  # (score, global window or -1, weighted)
    windows_before = 0
    n_windows = 0
    for series, scores in corpus:
        if len(scores) != series.rows:
            raise ValueError(f"{series.name}: {len(scores)} scores for {series.rows} rows")
        seen: set[int] = set()
        for i in range(series.probation, series.rows):
            k = series.window[i]
            if k >= 0:
                seen.add(k)
                points.append((scores[i], windows_before + k, profile.a_tp * series.reward[i]))
            else:
                points.append((scores[i], -1, profile.a_fp * series.reward[i]))
        n_windows += len(seen)
        windows_before += len(series.windows)
    points.sort(key=lambda p: p[0], reverse=True)
    best = Sweep(NOTHING_DETECTED, -profile.a_fn * n_windows)
    window_best: dict[int, float] = {}
    fp_total = 0.0
    tp_total = 0.0  # sum over detected windows of their best reward
    n_detected = 0
    i = 0
    while i < len(points):
        level = points[i][0]
        # Every row at this level becomes a detection at once.
        while i < len(points) and points[i][0] == level:
            _, k, weighted = points[i]
            if k < 0:
                fp_total += weighted
            else:
                previous = window_best.get(k)
                if previous is None:
                    window_best[k] = weighted
                    tp_total += weighted
                    n_detected += 1
                elif weighted > previous:
                    window_best[k] = weighted
                    tp_total += weighted - previous
            i += 1
        total = tp_total + fp_total - profile.a_fn * (n_windows - n_detected)
        if total > best.score:
            best = Sweep(level, total)
    return best


def normalized(raw: float, null: float, perfect: float) -> float:
    """100 * (raw - null) / (perfect - null): the null detector 0, a perfect one 100."""
    return 100.0 * (raw - null) / (perfect - null)


@dataclass(slots=True)
class ProfileResult:
    profile: Profile
    threshold: float
    raw: float
    null: float
    perfect: float
    series: list[SeriesResult]

    @property
    def score(self) -> float:
        return normalized(self.raw, self.null, self.perfect)


def score_corpus(
    corpus: Sequence[tuple[LabelledSeries, Sequence[float]]],
    profile: Profile,
    threshold: float | None = None,
) -> ProfileResult:
    """The corpus score at ``threshold``, or at NAB's optimized threshold when None.

    The null detector (a constant score on every row, its own threshold optimized too)
    and a perfect one (every window detected at its first row, A_TP each) bound the
    normalized score.
    """
    if threshold is None:
        threshold = optimize_threshold(corpus, profile).threshold
    results = [score_series(s, scores, threshold, profile) for s, scores in corpus]
    raw = sum(r.score for r in results)
    null = optimize_threshold([(s, [0.5] * s.rows) for s, _ in corpus], profile).score
    perfect = profile.a_tp * sum(len(s.windows) for s, _ in corpus)
    return ProfileResult(profile, threshold, raw, null, perfect, results)

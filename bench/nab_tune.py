"""Detector settings on NAB, fast: re-score kept replays offline, no new replay.

    python bench/nab_tune.py --out out/nab --settings '[{"method": "ensemble"}, ...]'

A replay of bench/nab.py keeps, per series, the readings and the one-step forecasts made
for them (``<out>/forecasts/``) beside its NAB result file. The forecasts do not depend
on the detector, so any [score] table is one pass of the agent's own scorer over them
(bench/nab_grid.py places the steps on the rows the replay writes them on). For each
table this prints NAB's standard profile optimized and at the table's fixed threshold
(its ``hold_level``), reward_low_FP_rate optimized, each category optimized on itself,
and leave-one-category-out over the threshold; then leave-one-category-out choosing
among all the tables given (the honest figure for a choice made here). Several --out
folders may be given (e.g. one per category run); the tables are scored in parallel.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from nab import FORECASTS
from nab_grid import Replayed, place, read_replay, step_scores, triggers, validated
from nab_loco import Corpus, leave_one_category_out, per_category
from nab_scoring import PROFILES, LabelledSeries, label_series, probation_rows, score_corpus

from edgetwin_common.timestamps import parse_timestamp

REFERENCE = {"method": "likelihood", "hold_level": 3.0, "hold_samples": 200}
"""The [score] table the kept replays ran (bench/nab.py's default before "ensemble" was
shipped for NAB): which placement reproduces its scores tells whether a device swapped
models. Either placement is tried; the closer one is kept."""


@dataclass(slots=True)
class Kept:
    """One series: its replay, where each model step's score lands, its labels."""

    replayed: Replayed
    runs_at: list[int | None]
    update_row: int | None
    rows: list[int | None]
    """Per data row, the result row with its time (None: the device skipped it)."""
    series: LabelledSeries


def load(data: Path, labels: Path, outs: Sequence[Path]) -> list[Kept]:
    windows = json.loads(labels.read_text())
    kept = []
    for path in sorted(data.glob("*/*.csv")):
        key = f"{path.parent.name}/{path.name}"
        out = next((o for o in outs if (o / key).exists()), None)
        if out is None:
            continue
        replayed = read_replay(out / FORECASTS / key, out / key)
        with path.open() as fh:
            stamps = [row[0] for row in list(csv.reader(fh))[1:]]
        own = [float(row[2]) for row in replayed.nab_rows]
        steps = step_scores(replayed, REFERENCE)
        best: tuple[float, int | None, list[int | None]] | None = None
        for update_row in (None, probation_rows(len(stamps))):
            runs_at = triggers(replayed, update_row)
            placed = place(replayed, steps, runs_at, update_row)
            worst = max((abs(a - b) for a, b in zip(own, placed, strict=True)), default=0.0)
            if best is None or worst < best[0]:
                best = (worst, update_row, runs_at)
        assert best is not None
        result_times = [parse_timestamp(row[0]) for row in replayed.nab_rows]
        rows: list[int | None] = []
        j = 0
        for stamp in stamps:
            if j < len(result_times) and result_times[j] == parse_timestamp(stamp):
                rows.append(j)
                j += 1
            else:
                rows.append(None)
        by_time = {parse_timestamp(s): s for s in stamps}
        spans = [[by_time.get(parse_timestamp(t), t) for t in w] for w in windows.get(key, [])]
        series = label_series(key, stamps, spans)
        kept.append(Kept(replayed, best[2], best[1], rows, series))
    return kept


def corpus_of(kept: Sequence[Kept], table: Mapping[str, Any]) -> Corpus:
    corpus = []
    for k in kept:
        placed = place(k.replayed, step_scores(k.replayed, table), k.runs_at, k.update_row)
        scores = [0.0 if r is None else placed[r] for r in k.rows]
        corpus.append((k.series, scores))
    return corpus


_KEPT: list[Kept] = []


def _evaluate(table: dict[str, Any]) -> tuple[str, Corpus, list[str]]:
    corpus = corpus_of(_KEPT, table)
    standard, low_fp = PROFILES[0], PROFILES[1]
    best = score_corpus(corpus, standard)
    fixed_level = float(validated(table).get("hold_level", 3.0))
    fixed = score_corpus(corpus, standard, fixed_level)
    low = score_corpus(corpus, low_fp)
    low_fixed = score_corpus(corpus, low_fp, fixed_level)
    loco = leave_one_category_out({"t": corpus}, standard)
    cats = per_category(corpus, standard, None)
    cats_fixed = per_category(corpus, standard, fixed_level)
    name = json.dumps(table, sort_keys=True)
    lines = [
        name,
        f"  standard optimized {best.score:5.1f} (at {best.threshold:.4g}), "
        f"fixed {fixed_level:g}: {fixed.score:5.1f}; LOCO {loco.mean:5.1f}; "
        f"low-FP optimized {low.score:5.1f} (at {low.threshold:.4g}), fixed {low_fixed.score:5.1f}",
        "  per category (optimized / fixed): "
        + "; ".join(f"{c} {cats[c]:.1f} / {cats_fixed[c]:.1f}" for c in cats),
        "  LOCO folds: "
        + "; ".join(f"{f.held_out} {f.score:.1f} (at {f.threshold:.4g})" for f in loco.folds),
    ]
    return name, corpus, lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    nab = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "nab"
    parser.add_argument("--data", type=Path, default=nab / "data")
    parser.add_argument("--labels", type=Path, default=nab / "labels" / "combined_windows.json")
    parser.add_argument("--out", type=Path, action="append", required=True)
    parser.add_argument("--settings", required=True, help="a JSON list of [score] tables")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    tables = json.loads(args.settings)
    _KEPT.extend(load(args.data, args.labels, args.out))
    print(f"{len(_KEPT)} series")
    with Pool(min(args.processes, len(tables))) as pool:
        results = pool.map(_evaluate, tables)
    runs: dict[str, Corpus] = {}
    for name, corpus, lines in results:
        print("\n".join(lines), flush=True)
        runs[name] = corpus
    if len(runs) > 1:
        loco = leave_one_category_out(runs, PROFILES[0])
        print(f"\nLOCO choosing among the {len(runs)} tables: mean {loco.mean:.1f}")
        for f in loco.folds:
            print(f"  {f.held_out} {f.score:.1f}: {f.setting} at {f.threshold:.4g}")


if __name__ == "__main__":
    sys.exit(main())

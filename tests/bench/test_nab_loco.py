"""Leave-one-category-out on a hand-made corpus whose answer follows from NAB's formulas.

Three categories of one 100-row file each, one window (rows 50-59) per file, probation
rows 0-14; a detection at row 50 earns exactly A_TP = 1, a miss -1, a detection at
row 20 (no window before it) -0.11. Normalized per held-out file: 100 for a detection at
the window's start, 0 for a miss (the null detector misses it too).
"""

from __future__ import annotations

import pytest
from nab_loco import best_setting, categories, category, leave_one_category_out, per_category
from nab_scoring import PROFILES, LabelledSeries, label_series

STANDARD = PROFILES[0]
ROWS = 100


def stamps() -> list[str]:
    return [f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00" for i in range(ROWS)]


def series(name: str) -> LabelledSeries:
    ts = stamps()
    return label_series(name, ts, [[ts[50], ts[59]]])


def scored(name: str, **at: float) -> tuple[LabelledSeries, list[float]]:
    """A file whose row ``r<i>`` scores the given value, every other row 0."""
    scores = [0.0] * ROWS
    for row, value in at.items():
        scores[int(row.removeprefix("r"))] = value
    return series(name), scores


# "shipped": a and b caught at 0.8; c caught only at 0.3, below a false positive at 0.6.
SHIPPED = [
    scored("a/f.csv", r50=0.8),
    scored("b/f.csv", r50=0.8),
    scored("c/f.csv", r50=0.3, r20=0.6),
]
# "other": a and c caught at 0.7 or more, b never.
OTHER = [scored("a/f.csv", r50=0.8), scored("b/f.csv"), scored("c/f.csv", r50=0.7)]


def test_every_setting_and_the_threshold_are_chosen_without_the_held_out_category() -> None:
    loco = leave_one_category_out({"shipped": SHIPPED, "other": OTHER}, STANDARD)

    folds = {f.held_out: f for f in loco.folds}
    assert list(folds) == ["a", "b", "c"]
    # a out: on b + c, "shipped" at 0.3 scores 1 + 1 - 0.11 (97.25) and "other" at
    # best 0 (50): shipped at 0.3 catches a's window at its start.
    assert (folds["a"].setting, folds["a"].threshold) == ("shipped", 0.3)
    assert folds["a"].chosen_on == pytest.approx(100 * (1.89 + 2) / 4)
    assert folds["a"].score == pytest.approx(100.0)
    # b out: on a + c, "other" at 0.7 is perfect (100): it never sees b's miss.
    assert (folds["b"].setting, folds["b"].threshold) == ("other", 0.7)
    assert folds["b"].chosen_on == pytest.approx(100.0)
    assert folds["b"].score == pytest.approx(0.0)
    # c out: on a + b, "shipped" at 0.8 is perfect; c's window scores 0.3 < 0.8: missed.
    assert (folds["c"].setting, folds["c"].threshold) == ("shipped", 0.8)
    assert folds["c"].score == pytest.approx(0.0)
    assert loco.mean == pytest.approx(100 / 3)


def test_the_threshold_alone_is_chosen_when_there_is_one_setting() -> None:
    loco = leave_one_category_out({"shipped": SHIPPED}, STANDARD)

    # b out: on a + c the threshold is 0.3 (97.25), which catches b at 0.8.
    assert [(f.held_out, f.threshold, f.score) for f in loco.folds] == [
        ("a", 0.3, pytest.approx(100.0)),
        ("b", 0.3, pytest.approx(100.0)),
        ("c", 0.8, pytest.approx(0.0)),
    ]
    assert loco.mean == pytest.approx(200 / 3)


def test_a_tie_goes_to_the_setting_declared_first() -> None:
    loco = leave_one_category_out({"first": SHIPPED, "second": list(SHIPPED)}, STANDARD)
    assert {f.setting for f in loco.folds} == {"first"}
    loco = leave_one_category_out({"second": list(SHIPPED), "first": SHIPPED}, STANDARD)
    assert {f.setting for f in loco.folds} == {"second"}


def test_the_held_out_score_follows_the_profile() -> None:
    low_fn = PROFILES[2]  # a miss costs 2: c out still picks 0.8 on a + b and misses c
    loco = leave_one_category_out({"shipped": SHIPPED}, low_fn)
    assert [f.score for f in loco.folds] == [
        pytest.approx(100.0),
        pytest.approx(100.0),
        pytest.approx(0.0),
    ]


def test_per_category_scores() -> None:
    assert per_category(SHIPPED, STANDARD, None) == {
        "a": pytest.approx(100.0),
        "b": pytest.approx(100.0),
        "c": pytest.approx(100 * (1 - 0.11 + 1) / 2),
    }
    # At 0.5, c keeps its false positive and misses its window: below the null detector.
    at_half = per_category(SHIPPED, STANDARD, 0.5)
    assert at_half == {
        "a": pytest.approx(100.0),
        "b": pytest.approx(100.0),
        "c": pytest.approx(100 * (-1 - 0.11 + 1) / 2),
    }


def test_bad_corpora_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="no detector setting"):
        leave_one_category_out({}, STANDARD)
    with pytest.raises(ValueError, match="same series"):
        leave_one_category_out({"x": SHIPPED, "y": SHIPPED[:2]}, STANDARD)
    with pytest.raises(ValueError, match="two categories or more"):
        leave_one_category_out({"x": [scored("a/f.csv"), scored("a/g.csv")]}, STANDARD)
    with pytest.raises(ValueError, match="not named <category>/<file>"):
        category(series("f.csv"))
    assert categories(SHIPPED) == ["a", "b", "c"]


def test_the_best_setting_on_a_whole_corpus() -> None:
    chosen = best_setting({"shipped": SHIPPED, "other": OTHER}, STANDARD)
    # shipped at 0.3: 1 + 1 + 1 - 0.11 of 3 windows; other at best 1 + 1 - 1.
    assert (chosen.setting, chosen.threshold) == ("shipped", 0.3)
    assert chosen.score == pytest.approx(100 * (2.89 + 3) / 6)
